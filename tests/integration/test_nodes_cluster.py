"""Operating nodes with real processes (SPEC §7, issue 12): zombies, queues, signals, reruns, interrupts.

Every node here is a real ``wippy`` process (through wf_node.py, which adds
the effects tools: a separate SQLite file is the outside world).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3

import pytest

from wippy_agents.store import open_store

from .wf_support import NodeProc, until, write_app

RELAY = """
return {handler = function(args)
  local total = 0
  for i = 1, args.steps do
    local r, err = funcs.call("test.fx:once", {task = workflow.id(), step = i})
    if err then return nil, err end
    total = total + r
    time.sleep(args.pause or "300ms")
  end
  return total
end}
"""

APPROVE = """
return {handler = function(args)
  local got = workflow.signal("approved")
  return {order = args.order, approved_by = got.by}
end}
"""


def effects_db(tmp_path, *, unique: bool = True) -> str:
    path = tmp_path / "effects.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE effects (task TEXT, step INTEGER, tool TEXT, node TEXT, pid INTEGER, at REAL"
               + (", UNIQUE (task, step))" if unique else ")"))
    db.close()
    return str(path)


def effect_rows(path: str) -> list[tuple]:
    db = sqlite3.connect(path, timeout=10)
    try:
        return db.execute("SELECT task, step, pid FROM effects ORDER BY step").fetchall()
    finally:
        db.close()


async def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str, str]:
    node = await NodeProc.start(*args, env=env or {})
    code = await node.finish(timeout=timeout)
    return code, node.stdout.decode(), node.log()


# -- fencing: a zombie writes nothing ----------------------------------------------------------
@pytest.mark.timeout(120)
@pytest.mark.postgres
async def test_a_node_paused_past_its_lease_writes_no_row_and_causes_no_effect_after_a_takeover(tmp_path, store_url):
    url = store_url
    fx = effects_db(tmp_path)
    app = write_app(tmp_path, url, {"relay": RELAY}, lease=1.0, beat=0.2, claim=0.1)
    store = await open_store(url)
    a = await NodeProc.start("run", "--app", app, "--node", "A", env={"WF_EFFECTS": fx, "WF_NODE": "A"})
    b = None
    try:
        assert await a.wait_ready(), a.log()
        code, out, log = await run_cli("tasks", "start", "app.flows:relay", json.dumps({"steps": 8}),
                                       "--task-id", "z1", "--app", app)
        assert code == 0 and out.strip() == "z1", log
        await until(lambda: _effects_at_least(fx, 2), timeout=20, what="A to run two steps", every=0.01)
        # Inside the 300 ms durable sleep after step 2 (its journal write is ~10 ms after the effect):
        # a process stopped inside an SQLite write would hold the file's write lock for everyone.
        await asyncio.sleep(0.1)
        os.kill(a.proc.pid, signal.SIGSTOP)  # a GC pause, a laptop lid, a cut cable
        stopped = len(effect_rows(fx))
        b = await NodeProc.start("run", "--app", app, "--node", "B", env={"WF_EFFECTS": fx, "WF_NODE": "B"})
        assert await b.wait_ready(), b.log()
        try:
            done = await until(lambda: _succeeded(store, "z1"), timeout=40, what="B to take over and finish z1")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- B:\n{b.log()}") from None
        journal = await store.journal_load("z1")
        os.kill(a.proc.pid, signal.SIGCONT)  # the zombie wakes up
        try:
            await until(lambda: _logged(a, b"lost the lease of task z1"), timeout=10, what="A to notice")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- A:\n{a.log()}") from None
        assert (await store.journal_load("z1")) == journal  # not one row from the zombie
        assert await b.stop() == 0, b.log()
        assert await a.stop() == 0, a.log()
    finally:
        for node in (a, b):
            if node is not None:
                os.kill(node.proc.pid, signal.SIGCONT) if node.proc.returncode is None else None
                node.kill()
                await node.finish()
        await store.close()
    rows = effect_rows(fx)
    assert done.result == sum(range(1, 9)) and done.owner == "B"
    assert [step for _, step, _ in rows] == list(range(1, 9))  # each effect once (UNIQUE would refuse more)
    assert {pid for _, step, pid in rows if step > stopped} == {b.proc.pid}  # nothing by A after the pause
    assert "took over task z1" in b.log()


# -- the queue, signals and waits over the command line -------------------------------------------
@pytest.mark.timeout(120)
@pytest.mark.parametrize("nodes", [1, 2])
async def test_tasks_start_wait_and_signal_from_the_command_line(tmp_path, nodes, pg_url):
    fx = effects_db(tmp_path)
    app = write_app(tmp_path, pg_url, {"relay": RELAY, "approve": APPROVE}, lease=2.0, beat=0.4, claim=0.1)
    workers = [await NodeProc.start("run", "--app", app, env={"WF_EFFECTS": fx, "WF_NODE": f"w{i}"})
               for i in range(nodes)]
    try:
        for w in workers:
            assert await w.wait_ready(), w.log()
        code, out, log = await run_cli("tasks", "start", "app.flows:approve", '{"order": 7}', "--task-id", "o7",
                                       "--app", app)
        assert (code, out.strip()) == (0, "o7"), log
        ids = []
        for i in range(6):
            code, out, log = await run_cli("tasks", "start", "app.flows:relay",
                                           json.dumps({"steps": 2, "pause": "10ms"}), "--app", app)
            assert code == 0, log
            ids.append(out.strip())
        waiter = await NodeProc.start("tasks", "wait", "o7", "--app", app, env={})
        await asyncio.sleep(0.3)  # the waiter blocks: o7 waits for its signal
        assert waiter.proc.returncode is None
        code, _, log = await run_cli("tasks", "signal", "o7", "approved", '{"by": "ada"}', "--app", app)
        assert code == 0, log
        assert await waiter.finish(timeout=30) == 0, waiter.log()
        assert json.loads(waiter.stdout) == {"order": 7, "approved_by": "ada"}
        for task_id in ids:
            code, out, log = await run_cli("tasks", "wait", task_id, "--timeout", "30", "--app", app)
            assert (code, json.loads(out)) == (0, 3), log
        store = await open_store(pg_url)
        try:
            owners = {t.owner for t in await store.task_list(limit=20)}
        finally:
            await store.close()
        for w in workers:
            assert await w.stop() == 0, w.log()
    finally:
        for w in workers:
            w.kill()
            await w.finish()
    assert len(effect_rows(fx)) == 12
    if nodes == 2:  # both workers took a share (claims of up to max_tasks each)
        assert sum("claimed queued task" in w.log() for w in workers) == 2, [w.log() for w in workers]
    assert None not in owners  # every task ran somewhere


# -- reruns after a kill ------------------------------------------------------------------------------
@pytest.mark.timeout(120)
async def test_rerunning_wippy_call_with_its_task_id_after_a_sigkill_resumes_at_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    fx = effects_db(tmp_path, unique=False)
    # A long lease: a rerun that waited for it would time out; the dead owner is known dead at once.
    # Idempotent steps: the one in flight at the kill may run again, nothing strands.
    app = write_app(tmp_path, url, {"relay": RELAY.replace("test.fx:once", "test.fx:again")}, lease=60.0,
                    beat=5.0, claim=0)
    args = ("call", "app.flows:relay", json.dumps({"steps": 4}), "--task-id", "c1", "--app", app)
    first = await NodeProc.start(*args, env={"WF_EFFECTS": fx})
    await until(lambda: _effects_at_least(fx, 2), timeout=30, what="the first call to run two steps")
    first.kill()
    assert await first.finish() == -9
    code, out, log = await run_cli(*args, env={"WF_EFFECTS": fx}, timeout=30)
    assert (code, json.loads(out)) == (0, 10), log
    steps = [step for _, step, _ in effect_rows(fx)]
    assert sorted(set(steps)) == [1, 2, 3, 4] and len(steps) <= 5  # at most the step in flight again


# -- interrupts --------------------------------------------------------------------------------------
@pytest.mark.timeout(60)
async def test_sigterm_of_a_node_leaves_its_tasks_pending_for_the_next_one(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    fx = effects_db(tmp_path)
    app = write_app(tmp_path, url, {"relay": RELAY}, lease=30.0, beat=5.0, claim=0.1)
    store = await open_store(url)
    a = await NodeProc.start("run", "--app", app, env={"WF_EFFECTS": fx})
    try:
        assert await a.wait_ready(), a.log()
        code, _, log = await run_cli("tasks", "start", "app.flows:relay", json.dumps({"steps": 6}),
                                     "--task-id", "t1", "--app", app)
        assert code == 0, log
        await until(lambda: _effects_at_least(fx, 2), timeout=20, what="two steps")
        assert await a.stop() == 0, a.log()  # SIGTERM
        task = await store.task_get("t1")
        assert (task.status, task.owner, task.error) == ("pending", None, None), task
        b = await NodeProc.start("run", "--app", app, env={"WF_EFFECTS": fx})
        try:
            await until(lambda: _succeeded(store, "t1"), timeout=30, what="the next node to finish t1")
            assert await b.stop() == 0, b.log()
        finally:
            b.kill()
            await b.finish()
    finally:
        a.kill()
        await a.finish()
        await store.close()
    assert [step for _, step, _ in effect_rows(fx)] == [1, 2, 3, 4, 5, 6]


async def _effects_at_least(path: str, n: int) -> bool:
    return len(effect_rows(path)) >= n


async def _succeeded(store, task_id: str):
    task = await store.task_get(task_id)
    return task if task is not None and task.status == "succeeded" else None


async def _logged(node: NodeProc, text: bytes) -> bool:
    return any(text in line for line in node.lines)


# -- stable names ----------------------------------------------------------------------------------
@pytest.mark.timeout(60)
async def test_a_second_live_wippy_run_with_the_same_node_name_refuses_to_start(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    app = write_app(tmp_path, url, {"relay": RELAY}, lease=5.0, beat=1.0, claim=0.5)
    first = await NodeProc.start("run", "--app", app, "--node", "w1", env={})
    try:
        assert await first.wait_ready(), first.log()
        code, _, log = await run_cli("run", "--app", app, "--node", "w1", timeout=30)
        assert code == 1 and "node name 'w1' is in use by a live process" in log, log
        assert len([ln for ln in log.splitlines() if ln.startswith("wippy: error:")]) == 1
        assert await first.stop() == 0, first.log()
        second = await NodeProc.start("run", "--app", app, "--node", "w1", env={})  # the name is free again
        assert await second.wait_ready(), second.log()
        assert await second.stop() == 0, second.log()
    finally:
        first.kill()
        await first.finish()
