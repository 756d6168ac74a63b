"""A durable `time.sleep("2s")` in a workflow crosses a node restart: it fires once, not early, not twice."""

from __future__ import annotations

import sqlite3
import time

from wippy_agents.store import open_store

from .wf_support import NodeProc, enqueue, until, write_app

NAP = """
return {handler = function()
  local t0 = time.now()
  time.sleep("2s")
  local r, err = funcs.call("test.fx:once", {task = workflow.id(), step = 1})
  if err then return nil, err end
  return {t0 = t0, woke = time.now()}
end}
"""


async def test_a_durable_sleep_survives_a_sigkill_and_fires_once_on_time(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    effects = tmp_path / "effects.db"
    db = sqlite3.connect(effects)
    db.execute("CREATE TABLE effects (task TEXT, step INTEGER, tool TEXT, node TEXT, pid INTEGER, at REAL)")
    db.close()
    app = write_app(tmp_path, url, {"nap": NAP}, lease=2.0, beat=0.5, claim=0.5)
    env = {"WF_EFFECTS": str(effects), "WF_NODE": "sleepy"}
    args = ["run", "--app", app, "--node", "sleepy"]
    store = await open_store(url)
    nodes: list[NodeProc] = []
    try:
        first = await NodeProc.start(*args, env=env)
        nodes.append(first)
        assert await first.wait_ready(), first.log()
        await enqueue(url, "nap-1", "app.flows:nap")
        timer = await until(lambda: _timer(store), timeout=10, what="the timer to be journaled")
        first.kill()  # mid-sleep: the wake-up time is in the journal, nothing else happened yet
        killed_at = time.time()
        assert await first.finish() == -9
        assert killed_at < timer.result and _effects(effects) == []
        second = await NodeProc.start(*args, env=env)  # the same node restarts and recovers its task
        nodes.append(second)
        assert await second.wait_ready(), second.log()
        task = await until(lambda: _done(store), timeout=15, what="the workflow to finish")
        steps = await store.journal_load("nap-1")
        assert await second.stop() == 0, second.log()
    finally:
        for node in nodes:
            node.kill()
            await node.finish()
        await store.close()

    wake_at = timer.result
    assert task.status == "succeeded", task
    assert abs(wake_at - (task.result["t0"] + 2.0)) < 0.5  # the timer was set for 2 s after the start
    fired = _effects(effects)
    assert len(fired) == 1  # once
    assert fired[0] >= wake_at  # not early
    assert task.result["woke"] >= wake_at
    assert [s.name for s in steps] == ["time.now", "time.sleep", "funcs.call:test.fx:once", "time.now"]


async def _timer(store):
    steps = await store.journal_load("nap-1")
    return next((s for s in steps if s.name == "time.sleep"), None)


async def _done(store):
    task = await store.task_get("nap-1")
    return task if task is not None and task.status in ("succeeded", "failed", "stranded") else None


def _effects(path) -> list[float]:
    con = sqlite3.connect(path)
    try:
        return [at for (at,) in con.execute("SELECT at FROM effects")]
    finally:
        con.close()
