"""Real crashes: a node process SIGKILLed at seeded points, restarted until the task ends."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import sys
from pathlib import Path

from .crash_child import STEPS, idempotent

CHILD = str(Path(__file__).with_name("crash_child.py"))
KILLS = 6


async def test_sigkill_at_seeded_points_never_repeats_a_completed_step(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    effects = str(tmp_path / "effects.db")
    db = sqlite3.connect(effects)
    db.executescript("CREATE TABLE effects (step INTEGER, pid INTEGER); CREATE TABLE retries (seq INTEGER);")
    db.close()
    rng = random.Random(20261125)
    kills, outcome = 0, None
    for _ in range(KILLS * 3):
        proc = await asyncio.create_subprocess_exec(sys.executable, CHILD, url, effects, stdout=asyncio.subprocess.PIPE)
        try:
            assert (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() == b"READY"
            if kills < KILLS:
                try:  # the 24 steps take ~0.4 s: kill somewhere early enough to kill again
                    outcome = await asyncio.wait_for(proc.stdout.readline(), rng.uniform(0.0, 0.08))
                except TimeoutError:
                    proc.kill()
                    kills += 1
                    continue
            else:
                outcome = await asyncio.wait_for(proc.stdout.readline(), 30)
            if outcome.startswith(b"DONE"):
                break
            assert outcome.strip() == b"STRANDED", outcome  # the next node resumes it with --retry
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
    assert outcome == f"DONE {sum(range(STEPS))}\n".encode() and kills == KILLS

    db = sqlite3.connect(effects)
    counts = dict(db.execute("SELECT step, COUNT(*) FROM effects GROUP BY step").fetchall())
    retried = [seq for (seq,) in db.execute("SELECT seq FROM retries")]
    db.close()
    for i in range(STEPS):
        if not idempotent(i):
            # a non-idempotent effect repeats only when a person chose --retry for it
            # (a retry that is itself killed before the effect adds nothing)
            assert 1 <= counts[i] <= 1 + retried.count(i + 1), (i, counts, retried)
        else:
            assert counts[i] >= 1, (i, counts)
    extra = sum(counts[i] - 1 for i in range(STEPS) if idempotent(i))
    assert extra <= kills  # each kill may repeat at most the one step in flight
    assert all(not idempotent(seq - 1) for seq in retried)  # only a non-idempotent step strands
