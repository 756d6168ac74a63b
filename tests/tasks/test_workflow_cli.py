"""`wippy call` and `wippy tasks list|show|resume|cancel` on workflow tasks (SPEC §7, §9)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from wippy_agents.cli import main
from wippy_agents.store import open_store
from wippy_agents.store.base import StepRecord, TaskRecord

from .test_workflow import write_app

TWO = """return {handler = function(args)
  local a = funcs.call("app.tools:once", {})
  local b = funcs.call("app.tools:add", {a = 1, b = 2})
  return {a = a, b = b}
end}"""
ONCE = {"name": "once", "kind": "function.lua", "source": "return {handler = function() return 'did it' end}"}


@pytest.fixture
def app_dir(tmp_path):
    return write_app(tmp_path, {"two": TWO, "wait": 'return {handler = function() return workflow.signal("go") end}'},
                     tools=[ONCE])


def wippy(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def crash_in_first_call(tmp_path, task_id: str) -> None:
    """Leave a workflow task as a node that died inside its first (non-idempotent) call would."""

    async def setup() -> None:
        store = await open_store(f"sqlite:///{tmp_path}/state.db")
        try:
            now = time.time()
            await store.task_create(TaskRecord(id=task_id, kind="workflow", target="app.flows:two", input={},
                                               status="running", owner="gone", lease_expires_at=now - 1,
                                               created_at=now, updated_at=now))
            await store.journal_write(StepRecord(task_id=task_id, seq=1, name="funcs.call:app.tools:once",
                                                 status="started", started_at=now))
        finally:
            await store.close()

    asyncio.run(setup())


def test_wippy_call_runs_a_workflow_once_per_task_id(app_dir, capsys):
    code, out, _ = wippy(capsys, "call", "app.flows:two", "{}", "--app", app_dir, "--task-id", "cli-1")
    assert code == 0 and json.loads(out) == {"a": "did it", "b": 3}
    code, out, _ = wippy(capsys, "call", "app.flows:two", "{}", "--app", app_dir, "--task-id", "cli-1")
    assert code == 0 and json.loads(out) == {"a": "did it", "b": 3}
    code, out, _ = wippy(capsys, "tasks", "show", "cli-1", "--app", app_dir)
    assert code == 0 and out.count("funcs.call:app.tools:") == 2  # the second call found the task, ran nothing


def test_a_stranded_workflow_is_listed_shown_and_resumed_with_skip_or_retry(app_dir, tmp_path, capsys):
    crash_in_first_call(tmp_path, "s-1")
    code, _, err = wippy(capsys, "tasks", "resume", "s-1", "--app", app_dir)
    assert code == 1 and "never finished" in err and "funcs.call:app.tools:once" in err and "--retry" in err
    code, out, _ = wippy(capsys, "tasks", "list", "--app", app_dir)
    assert code == 0 and "s-1" in out and "stranded" in out and "app.flows:two" in out
    code, out, _ = wippy(capsys, "tasks", "show", "s-1", "--app", app_dir)
    assert code == 0 and "started, never finished" in out and "funcs.call:app.tools:once" in out

    code, out, _ = wippy(capsys, "tasks", "resume", "s-1", "--skip", "--app", app_dir)
    assert code == 0 and json.loads(out) == {"b": 3}  # the skipped call answers nil

    crash_in_first_call(tmp_path, "s-2")
    wippy(capsys, "tasks", "resume", "s-2", "--app", app_dir)  # strands it
    code, out, _ = wippy(capsys, "tasks", "resume", "s-2", "--retry", "--app", app_dir)
    assert code == 0 and json.loads(out) == {"a": "did it", "b": 3}


def test_cancel_of_a_workflow_and_unknown_ids_are_one_line_errors(app_dir, tmp_path, capsys):
    async def waiting() -> None:
        store = await open_store(f"sqlite:///{tmp_path}/state.db")
        now = time.time()
        await store.task_create(TaskRecord(id="w-1", kind="workflow", target="app.flows:wait", input=None,
                                           status="pending", owner=None, lease_expires_at=None,
                                           created_at=now, updated_at=now))
        await store.close()

    asyncio.run(waiting())
    code, out, _ = wippy(capsys, "tasks", "cancel", "w-1", "--app", app_dir)
    assert code == 0 and "w-1 is cancelled" in out
    code, _, err = wippy(capsys, "tasks", "resume", "w-1", "--app", app_dir)
    assert code == 1 and "already cancelled" in err
    for action in ("show", "resume", "cancel"):
        code, _, err = wippy(capsys, "tasks", action, "nope", "--app", app_dir)
        assert code == 1 and "'nope'" in err and len(err.strip().splitlines()) == 1


def test_show_prints_timers_and_clock_reads_as_times(tmp_path, capsys):
    nap = "return {handler = function() local t = time.now(); time.sleep(0); return t end}"
    app_dir = write_app(tmp_path, {"nap": nap})
    code, out, _ = wippy(capsys, "call", "app.flows:nap", "--app", app_dir, "--task-id", "n-1")
    assert code == 0
    code, out, _ = wippy(capsys, "tasks", "show", "n-1", "--app", app_dir)
    assert code == 0 and "wakes at 20" in out and "time.now" in out
