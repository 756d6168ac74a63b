"""Real crashes of real nodes running workflow.lua tasks (SPEC §7, issue 5).

Workflows start with ``wippy call --task-id`` and are then carried on by
``wippy run`` (recovery of its own tasks at start). Each node process is
SIGKILLed at a seeded point: either at a random time, or — through the test
tool's ``WF_KILL_AT`` — right after a step's side effect and before its
journal write. A stranded task is resumed with ``wippy tasks resume ID
--retry``. The effects table (a separate SQLite file: the outside world)
must then show every step's effect exactly once, except the step in flight
at a kill: an idempotent one may run again, a non-idempotent one only after
a person chose ``--retry`` for it.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from collections import Counter

import pytest

from wippy_agents.store import open_store

from .wf_support import NodeProc, until, write_app

FLOW = """
return {handler = function(args)
  local total = 0
  for i = 1, args.steps do
    local tool = (i % 3 == 1) and "test.fx:once" or "test.fx:again"
    local r, err = funcs.call(tool, {task = workflow.id(), step = i})
    if err then return nil, err end
    total = total + r
  end
  return total
end}
"""

TASKS = ("c1", "c2", "c3")
STEPS = 24
KILLS = 20
SEED = 20261126


def idempotent(step: int) -> bool:
    return step % 3 != 1


# ~30 s here; each of its ~30 node processes needs ~0.7 s of CPU to start, so a machine
# shared by several test runs can triple that: the bound is for such a machine.
@pytest.mark.timeout(240)
async def test_sigkilled_nodes_finish_every_workflow_with_each_effect_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    effects = tmp_path / "effects.db"
    db = sqlite3.connect(effects)
    db.execute("CREATE TABLE effects (task TEXT, step INTEGER, tool TEXT, node TEXT, pid INTEGER, at REAL)")
    db.close()
    app = write_app(tmp_path, url, {"crashy": FLOW}, lease=2.0, beat=0.5, claim=0.5)
    # 50 ms before and after each effect: a step takes ~0.1 s, so a kill point lands mid-run
    env = {"WF_EFFECTS": str(effects), "WF_NODE": "crashy", "WF_PAUSE": "0.05"}
    common = ["--app", app, "--node", "crashy", "--log-level", "INFO"]
    rng = random.Random(SEED)
    store = await open_store(url)
    kills, effect_kills, retries = 0, 0, []

    def effect_count() -> int:
        con = sqlite3.connect(effects, timeout=10)
        try:
            return con.execute("SELECT COUNT(*) FROM effects").fetchone()[0]
        finally:
            con.close()

    async def statuses() -> dict[str, str]:
        return {t.id: t.status for t in await store.task_list(limit=100)}

    try:
        # Round 0: each workflow starts in its own `wippy call` process; all three die.
        # Three processes at once: each its own default (unique) node name; a shared stable
        # name would refuse the second while the first lives (SPEC §7).
        calls = [await NodeProc.start("call", "app.flows:crashy", json.dumps({"steps": STEPS}), "--task-id", tid,
                                      *common[:2], *common[4:], env=env) for tid in TASKS]
        await until(lambda: _started(statuses, effect_count), timeout=30, what="all three workflows to start")
        await asyncio.sleep(rng.uniform(0.0, 0.1))
        for call in calls:
            call.kill()
            assert await call.finish() != 0, call.log()  # killed, not finished
            kills += 1

        while True:
            state = await statuses()
            assert set(state) == set(TASKS), state
            stranded = [tid for tid in TASKS if state[tid] == "stranded"]
            if stranded:
                task = await store.task_get(stranded[0])
                details = task.error["details"]
                assert details["step"] == "funcs.call:test.fx:once", task.error  # only non-idempotent strands
                retries.append((task.id, details["seq"]))
                plan = _plan(rng, effect_count(), kills, always=True)
                node = await NodeProc.start("tasks", "resume", task.id, "--retry", *common, env={**env, **plan})
                code = await node.finish(timeout=60)
                if code == -9:
                    kills += 1
                    effect_kills += 1
                else:
                    assert code == 0, node.log()
                continue
            if all(state[tid] == "succeeded" for tid in TASKS):
                break
            plan = _plan(rng, effect_count(), kills)
            node = await NodeProc.start("run", *common, env={**env, **plan})
            up = await node.wait_ready()
            if up and kills < KILLS and "WF_KILL_AT" not in plan:
                await asyncio.sleep(rng.uniform(0.0, 0.2))  # a time-based kill point
                if node.proc.returncode is None and await _active(statuses):
                    node.kill()
                    kills += 1
            # Otherwise: run until the tool kills the node, or every task is done or stranded.
            await until(lambda: _round_over(node, statuses), timeout=60, what="the node to die or the tasks to settle")
            if node.proc.returncode == -9 and "WF_KILL_AT" in plan:
                kills += 1
                effect_kills += 1
            if node.proc.returncode is None:
                assert await node.stop() == 0, node.log()
            else:
                await node.finish()
        results = {t.id: t.result for t in await store.task_list(limit=100)}
    finally:
        await store.close()

    print(f"kill points: {kills} ({effect_kills} between an effect and its journal write), "
          f"--retry resumes: {len(retries)}")
    assert kills >= KILLS and effect_kills >= 5, (kills, effect_kills)
    assert results == {tid: sum(range(1, STEPS + 1)) for tid in TASKS}
    con = sqlite3.connect(effects)
    rows = con.execute("SELECT task, step, pid FROM effects").fetchall()
    con.close()
    counts = Counter((task, step) for task, step, _ in rows)
    # A repeat is always by a later process: no node ever ran a step twice itself (replay never re-ran one).
    assert len({(task, step, pid) for task, step, pid in rows}) == len(rows)
    retried = Counter(retries)
    for tid in TASKS:
        extra = 0
        for step in range(1, STEPS + 1):
            n = counts[(tid, step)]
            if idempotent(step):
                assert n >= 1, (tid, step, counts)
                extra += n - 1
            else:  # repeated only by a person's --retry (a retry killed before its effect adds none)
                assert 1 <= n <= 1 + retried[(tid, step)], (tid, step, n, retries)
        assert extra <= kills  # each death repeats at most the one step in flight
    assert all(not idempotent(seq) for _, seq in retries)


def _plan(rng: random.Random, effects_so_far: int, kills: int, *, always: bool = False) -> dict[str, str]:
    """Half the kill points (all in a resume) die right after a side effect, before its journal write."""
    if kills < KILLS and (always or rng.random() < 0.5):
        return {"WF_KILL_AT": str(effects_so_far + rng.randint(1, 3))}
    return {}


async def _started(statuses, count) -> bool:
    return len(await statuses()) == len(TASKS) and count() >= len(TASKS)


async def _active(statuses) -> bool:
    return any(s in ("running", "pending") for s in (await statuses()).values())


async def _round_over(node: NodeProc, statuses) -> bool:
    if node.proc.returncode is not None:
        return True
    return not await _active(statuses)
