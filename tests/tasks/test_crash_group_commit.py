"""SIGKILL during 100 concurrent tasks on the group-commit writer (``store/writer.py``).

A real node process is killed at seeded points while 100 tasks write their
journals in shared transactions; then a new process recovers them to the end.
What must hold: every acknowledged non-idempotent step is in the journal, once,
with its result; no non-idempotent effect ran twice; each task's journal is a
prefix (seqs 1..n, only the last row may be a 'started' marker).
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import pytest

from .group_crash_child import STEPS, TASKS, idempotent

CHILD = str(Path(__file__).with_name("group_crash_child.py"))


def _read_log(path: Path) -> tuple[Counter, set]:
    effects, acks = Counter(), set()
    for line in path.read_text().splitlines():
        kind, task, step, *_ = line.split()
        if kind == "effect":
            effects[task, int(step)] += 1
        else:
            acks.add((task, int(step)))
    return effects, acks


def _journal(db_path: Path) -> dict[str, list[tuple[int, str, str]]]:
    db = sqlite3.connect(db_path)
    rows: dict[str, list] = {}
    for task, seq, name, status in db.execute("SELECT task_id, seq, name, status FROM journal ORDER BY task_id, seq"):
        rows.setdefault(task, []).append((seq, name, status))
    db.close()
    return rows


def _check_consistent(journal: dict) -> None:
    for task, rows in journal.items():
        assert [seq for seq, _n, _s in rows] == list(range(1, len(rows) + 1)), (task, rows)
        assert [name for _q, name, _s in rows] == [f"s{i}" for i in range(len(rows))], (task, rows)
        assert all(status != "started" for _q, _n, status in rows[:-1]), (task, rows)


async def _run(url: str, log: Path, kill_after_acks: int | None) -> bool:
    """One node process; SIGKILL it once ``kill_after_acks`` acks are logged. True if it finished."""
    proc = await asyncio.create_subprocess_exec(sys.executable, CHILD, url, str(log), stdout=asyncio.subprocess.PIPE)
    try:
        assert (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() == b"READY"
        if kill_after_acks is None:
            return (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"DONE"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while loop.time() < deadline and proc.returncode is None:
            if log.exists() and log.read_text().count("\nack ") >= kill_after_acks:
                break
            await asyncio.sleep(0.001)
        proc.kill()
        return False
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


@pytest.mark.parametrize("seed", [17, 2026])
async def test_sigkill_during_100_concurrent_tasks_loses_and_doubles_no_acknowledged_step(tmp_path, seed):
    db_path = tmp_path / "state.db"
    url = f"sqlite:///{db_path}"
    log = tmp_path / "effects.log"
    rng = random.Random(seed)
    total_acks = TASKS * sum(1 for i in range(STEPS) if not idempotent(i))
    kill_at = rng.randint(total_acks // 10, total_acks // 2)
    assert not await _run(url, log, kill_at)
    effects, acks = _read_log(log)
    assert len(acks) >= kill_at  # the kill landed mid-run, with steps acknowledged
    journal = _journal(db_path)
    _check_consistent(journal)
    done = {(task, int(name[1:])) for task, rows in journal.items() for _q, name, status in rows if status == "ok"}
    assert acks <= done, sorted(acks - done)[:5]  # nothing acknowledged was lost

    assert await _run(url, log, None)  # a new process recovers every task to its end
    effects, acks = _read_log(log)
    journal = _journal(db_path)
    _check_consistent(journal)
    assert len(journal) == TASKS
    for (task, step), n in effects.items():
        if not idempotent(step):
            assert n == 1, (task, step, n)  # a non-idempotent effect never ran twice
    db = sqlite3.connect(db_path)
    statuses = Counter(s for (s,) in db.execute("SELECT status FROM tasks"))
    db.close()
    # a task whose non-idempotent step was in flight at the kill strands; every other one succeeds
    assert set(statuses) <= {"succeeded", "stranded"} and statuses["succeeded"] >= 1, statuses
    for task, rows in journal.items():
        if len(rows) == STEPS and rows[-1][2] == "ok":
            assert all(effects[task, i] >= 1 for i in range(STEPS))
