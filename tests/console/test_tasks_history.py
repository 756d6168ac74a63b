"""``wippy tasks show ID``: an event history (time, duration, node, attempt, outcome, children nested), on both stores."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from wippy_agents.cli import main
from wippy_agents.errors import WippyError
from wippy_agents.store import StepRecord, TaskRecord, open_store
from wippy_agents.tasks import RetryPolicy, TaskEngine, task_history


async def _parent(ctx):
    await ctx.step("charge", lambda: {"charged": 7})
    tries = []

    def flaky():
        tries.append(1)
        if len(tries) < 3:
            raise RuntimeError("provider said 500")
        return "third time lucky"

    await ctx.step("flaky", flaky, retry=RetryPolicy(max_attempts=3, initial_delay=0.001, jitter=0.0))
    child = await ctx.run_child("child", "app:child", {"x": 21})

    def boom():
        raise RuntimeError("card declined\nwith a second line")

    try:
        await ctx.step("boom", boom)
    except WippyError:
        pass
    return {"child": child}


async def _child(ctx):
    return await ctx.step("double", lambda: ctx.task.input["x"] * 2)


async def _once(ctx):
    return await ctx.step("send", lambda: "sent")


@pytest.fixture
def histories(store_url):
    """A parent task (a retried step, a child task, a failed step) run by node-a, and a task
    stranded by node-a inside a non-idempotent step that node-b ran again with --retry."""

    async def setup():
        store = await open_store(store_url)
        a = TaskEngine(store, node_name="node-a", claim_interval=0)
        b = TaskEngine(store, node_name="node-b", claim_interval=0)
        try:
            for engine in (a, b):
                engine.register_kind("parent", _parent)
                engine.register_kind("child", _child)
                engine.register_kind("once", _once)
            await a.start("parent", "app:parent", {"order": 7}, task_id="p1")
            await a.wait("p1", timeout=10)
            now = time.time()
            await store.task_create(TaskRecord(id="r1", kind="once", target="app:once", input=None, status="running",
                                               owner="node-a", lease_expires_at=now - 1, created_at=now,
                                               updated_at=now))
            await store.journal_write(StepRecord(task_id="r1", seq=1, name="send", status="started", started_at=now,
                                                 node="node-a"))
            await b.resume("r1", retry=True)
            await b.wait("r1", timeout=10)
        finally:
            await a.close()
            await b.close()
            await store.close()

    asyncio.run(setup())
    return store_url


def _show(capsys, store_url, tmp_path, *extra):
    code = main(["tasks", "show", *extra, "--app", str(tmp_path), "--store", store_url])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_json_has_each_step_with_time_duration_node_attempt_and_outcome(histories, tmp_path, capsys):
    doc = json.loads(_show(capsys, histories, tmp_path, "p1", "--json"))
    assert doc["task"]["id"] == "p1" and doc["task"]["status"] == "succeeded"
    steps = {s["name"]: s for s in doc["steps"]}
    assert [s["seq"] for s in doc["steps"]] == [1, 2, 3, 4]
    assert list(steps) == ["charge", "flaky", "child:child:app:child", "boom"]
    for s in doc["steps"]:
        assert s["node"] == "node-a" and s["started_at"] <= s["finished_at"]
        assert s["duration_ms"] == pytest.approx((s["finished_at"] - s["started_at"]) * 1000, abs=0.01)
    assert (steps["charge"]["status"], steps["charge"]["result"], steps["charge"]["attempt"]) == ("ok", {"charged": 7}, 1)
    assert (steps["flaky"]["result"], steps["flaky"]["attempt"]) == ("third time lucky", 3)
    assert steps["boom"]["status"] == "error" and "card declined" in steps["boom"]["error"]["message"]
    # the child task's own history, nested under the step that started it
    [child] = steps["child:child:app:child"]["children"]
    assert child["task"]["id"] == "p1/3" and child["task"]["parent_id"] == "p1"
    assert [(s["name"], s["result"], s["node"]) for s in child["steps"]] == [("double", 42, "node-a")]
    assert doc["children"] == [] and all(not s["children"] for n, s in steps.items() if n != "child:child:app:child")


def test_a_step_run_again_after_a_crash_counts_as_its_next_attempt_on_the_node_that_ran_it(histories, tmp_path,
                                                                                           capsys):
    doc = json.loads(_show(capsys, histories, tmp_path, "r1", "--json"))
    [send] = doc["steps"]
    assert (send["status"], send["result"], send["attempt"], send["node"]) == ("ok", "sent", 2, "node-b")


def test_the_terminal_view_is_one_line_per_event_with_the_child_nested(histories, tmp_path, capsys):
    lines = _show(capsys, histories, tmp_path, "p1").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("history"))
    events = lines[start + 2:]
    assert "task created" in events[0] and "{\"order\": 7}" in events[0]
    assert "#1 charge ok" in events[1] and "node-a" in events[1] and "ms" in events[1]
    assert "#2 flaky ok" in events[2] and "  3  " in events[2] and "third time lucky" in events[2]
    assert "#3 child:child:app:child ok" in events[3]
    assert events[4].startswith("├─ child task p1/3 · child app:child · succeeded")
    assert events[5].startswith("│ ") and "task created" in events[5]
    assert events[6].startswith("│ ") and "#1 double ok" in events[6] and "42" in events[6]
    assert events[7].startswith("│ ") and "task succeeded" in events[7]
    # the error is collapsed to one line
    assert "#4 boom error" in events[8] and "card declined with a second line" in events[8]
    assert "task succeeded" in events[9] and len(events) == 10


def test_the_python_api_gives_the_same_history(histories):
    async def read():
        store = await open_store(histories)
        try:
            return await task_history(store, "p1")
        finally:
            await store.close()

    history = asyncio.run(read())
    assert [s.attempt for s in history.steps] == [1, 3, 1, 1]
    assert history.steps[2].children[0].task.id == "p1/3" and history.steps[0].duration is not None
