"""workflow.lua entries as durable Lua functions on the task journal (SPEC §7)."""

from __future__ import annotations

import time

import pytest
import yaml

from wippy_agents.app import App
from wippy_agents.store.base import StepRecord, TaskRecord
from wippy_agents.errors import (
    ConfigError,
    LuaError,
    LuaLimitExceeded,
    NondeterminismError,
    TaskCancelled,
    TaskStranded,
    UsageError,
)
from wippy_agents.tasks.settings import engine_options

from .conftest import eventually

FLOW = """
return {handler = function(args)
  local total = 0
  for i = 1, args.n do
    local r, err = funcs.call("app.tools:add", {a = total, b = i})
    if err then return nil, err end
    total = r
  end
  local t = time.now()
  local id = uuid.v4()
  return {total = total, t = t, id = id, task = workflow.id(), r = math.random(1000000)}
end}
"""

COUNTERS = """
return {handler = function(args)
  local n = registry.get("app.state:counter")
  return n
end}
"""


def write_app(tmp_path, flows: dict[str, str], *, tools: list | None = None, extra: dict | None = None) -> str:
    app = tmp_path / "app"
    (app / "src").mkdir(parents=True, exist_ok=True)
    settings = {"sources": ["src"], "store": f"sqlite:///{tmp_path}/state.db",
                "tasks": {"lease_seconds": 0.6, "heartbeat_seconds": 0.1, "claim_interval": 0}}
    settings.update(extra or {})
    (app / "wippy.yaml").write_text(yaml.safe_dump(settings))
    entries = [{"name": name, "kind": "workflow.lua", "source": src,
                "modules": ["funcs", "time", "uuid", "registry", "log"]} for name, src in flows.items()]
    (app / "src" / "flows.yaml").write_text(yaml.safe_dump({"namespace": "app.flows", "entries": entries}))
    tool_entries = [
        {"name": "add", "kind": "function.lua", "idempotent": True,
         "source": "return {handler = function(a) return a.a + a.b end}"},
        {"name": "refuse", "kind": "function.lua",
         "source": "return {handler = function(a) return nil, 'no ' .. tostring(a and a.what) end}"},
        *(tools or []),
    ]
    (app / "src" / "tools.yaml").write_text(yaml.safe_dump({"namespace": "app.tools", "entries": tool_entries}))
    return str(app)


async def test_a_workflow_runs_as_a_task_and_journals_every_host_answer(tmp_path):
    path = write_app(tmp_path, {"sum": FLOW})
    async with await App.open(path) as app:
        result = await app.workflows.run("app.flows:sum", {"n": 3}, task_id="w1", timeout=10)
        assert result["total"] == 6 and result["task"] == "w1"
        steps = await app.store.journal_load("w1")
        names = [s.name for s in steps]
        assert names == ["funcs.call:app.tools:add"] * 3 + ["time.now", "uuid.v4"]
        assert steps[3].result == result["t"] and steps[4].result == result["id"]
        task = await app.tasks.get("w1")
        assert task.kind == "workflow" and task.target == "app.flows:sum" and task.status == "succeeded"
        assert task.registry_version == app.registry.version


async def test_a_replayed_run_answers_from_the_journal_and_draws_the_same_random_numbers(tmp_path):
    path = write_app(tmp_path, {"sum": FLOW})
    async with await App.open(path) as app:
        first = await app.workflows.run("app.flows:sum", {"n": 2}, task_id="w2", timeout=10)
        # Re-run the finished task's code on its journal (as a resumed run would).
        await app.store.task_update("w2", status="stranded", owner=None, lease_expires_at=None, result=None)
        await app.tasks.resume("w2")
        again = await app.tasks.wait("w2", timeout=10)
        assert len(await app.store.journal_load("w2")) == 4  # nothing new was recorded
    assert again == first


async def test_a_changed_workflow_fails_with_a_nondeterminism_error_naming_the_step(tmp_path):
    path = write_app(tmp_path, {"sum": FLOW})
    async with await App.open(path) as app:
        await app.workflows.run("app.flows:sum", {"n": 2}, task_id="w3", timeout=10)
        before = [(s.seq, s.name, s.result) for s in await app.store.journal_load("w3")]
        changed = FLOW.replace('funcs.call("app.tools:add"', 'funcs.call("app.tools:refuse"')
        cs = app.registry.changeset(author="test", reason="change the code")
        cs.update("app.flows:sum", {"source": changed})
        await app.registry.apply(cs)
        await app.store.task_update("w3", status="stranded", owner=None, lease_expires_at=None)
        await app.tasks.resume("w3")
        with pytest.raises(NondeterminismError) as info:
            await app.tasks.wait("w3", timeout=10)
        assert "funcs.call:app.tools:add" in str(info.value) and "funcs.call:app.tools:refuse" in str(info.value)
        assert (await app.tasks.get("w3")).status == "failed"
        assert [(s.seq, s.name, s.result) for s in await app.store.journal_load("w3")] == before


async def test_a_step_error_reaches_lua_as_nil_err_and_a_nil_err_return_fails_the_task(tmp_path):
    flow = """return {handler = function()
      local r, err = funcs.call("app.tools:refuse", {what = "way"})
      return nil, "gave up: " .. err
    end}"""
    path = write_app(tmp_path, {"refuse": flow})
    async with await App.open(path) as app:
        with pytest.raises(LuaError, match="gave up: .*no way"):
            await app.workflows.run("app.flows:refuse", None, task_id="w4", timeout=10)
        steps = await app.store.journal_load("w4")
        assert [s.status for s in steps] == ["error"] and "no way" in steps[0].error["message"]


async def crashed_in_first_call(app, task_id: str, flow: str, call: str) -> None:
    """A task whose run died after its first call began (a 'started' row, no end)."""
    now = time.time()
    await app.store.task_create(TaskRecord(id=task_id, kind="workflow", target=flow, input=None, status="running",
                                           owner=None, lease_expires_at=None, created_at=now, updated_at=now))
    await app.store.journal_write(StepRecord(task_id=task_id, seq=1, name=call, status="started", started_at=now))


@pytest.mark.parametrize("tool, idempotent", [("once", False), ("again", True)])
async def test_the_called_entrys_idempotent_flag_decides_rerun_or_stranded(tmp_path, tool, idempotent):
    flow = f"""return {{handler = function() return funcs.call("app.tools:{tool}", {{}}) end}}"""
    tools = [{"name": "once", "kind": "function.lua", "source": "return {handler = function() return 1 end}"},
             {"name": "again", "kind": "function.lua", "idempotent": True,
              "source": "return {handler = function() return 2 end}"}]
    path = write_app(tmp_path, {"f": flow}, tools=tools)
    async with await App.open(path) as app:
        await crashed_in_first_call(app, "w5", "app.flows:f", f"funcs.call:app.tools:{tool}")
        assert [t.id for t in await app.tasks.recover()] == ["w5"]
        if idempotent:
            assert await app.tasks.wait("w5", timeout=10) == 2
            return
        with pytest.raises(TaskStranded, match="funcs.call:app.tools:once"):
            await app.tasks.wait("w5", timeout=10)
        await app.tasks.resume("w5", retry=True)
        assert await app.tasks.wait("w5", timeout=10) == 1


async def test_time_sleep_is_a_durable_timer(tmp_path):
    flow = """return {handler = function()
      local t0 = time.now()
      time.sleep("300ms")
      return time.now() - t0
    end}"""
    path = write_app(tmp_path, {"nap": flow})
    async with await App.open(path) as app:
        took = await app.workflows.run("app.flows:nap", None, task_id="w6", timeout=10)
        steps = await app.store.journal_load("w6")
    assert [s.name for s in steps] == ["time.now", "time.sleep", "time.now"]
    assert took >= 0.3 and steps[1].result >= steps[0].result + 0.3


async def test_signals_from_lua_reach_a_waiting_workflow_once_and_a_timeout_is_nil_err(tmp_path):
    flow = """return {handler = function()
      local a = workflow.signal("approve")
      local c = workflow.signal("approve")
      local b, err = workflow.signal("approve", "200ms")
      return {got = {a, c}, b = b, err = err}
    end}"""
    poke = {"name": "poke", "kind": "function.lua", "source": """return {handler = function(args)
      process.send("task:" .. args.id, "approve", {by = "process.send"})   -- to the task's process
      return workflow.send(args.id, "approve", {by = "workflow.send"})     -- through the store
    end}"""}
    path = write_app(tmp_path, {"wait": flow}, tools=[poke])
    async with await App.open(path) as app:
        await app.workflows.start("app.flows:wait", None, task_id="w7")
        await eventually(lambda: app.node.whereis("task:w7"), what="the task's process")
        assert await app.call("app.tools:poke", {"id": "w7"}) is True
        result = await app.tasks.wait("w7", timeout=10)
        steps = [s.name for s in await app.store.journal_load("w7")]
    assert sorted(g["by"] for g in result["got"]) == ["process.send", "workflow.send"]
    assert result.get("b") is None and "no 'approve' signal within 0.2s" in result["err"]
    assert steps == ["signal:approve", "signal:approve", "signal.deadline:approve", "signal:approve"]


async def test_a_workflow_calling_a_workflow_runs_it_as_a_child_task(tmp_path):
    parent = """return {handler = function(args)
      local r, err = funcs.call("app.flows:sum", {n = args.n})
      if err then return nil, err end
      return r.total * 10
    end}"""
    path = write_app(tmp_path, {"sum": FLOW, "parent": parent})
    async with await App.open(path) as app:
        assert await app.workflows.run("app.flows:parent", {"n": 3}, task_id="p", timeout=10) == 60
        child = await app.tasks.get("p/1")
        assert child.parent_id == "p" and child.target == "app.flows:sum" and child.status == "succeeded"
        assert [s.name for s in await app.store.journal_load("p")] == ["child:workflow:app.flows:sum"]
        # Plain Lua code calling a workflow starts it as a task and waits for it.
        caller = {"id": "app.tools:caller", "kind": "function.lua", "modules": ["funcs"],
                  "source": 'return {handler = function() return funcs.call("app.flows:sum", {n = 1}).total end}'}
        cs = app.registry.changeset(author="test")
        cs.create(caller)
        await app.registry.apply(cs)
        assert await app.call("app.tools:caller") == 1


async def test_workflow_functions_outside_a_workflow_answer_nil_err(tmp_path):
    tool = {"name": "peek", "kind": "function.lua",
            "source": "return {handler = function() local v, err = workflow.id(); return err end}"}
    path = write_app(tmp_path, {"sum": FLOW}, tools=[tool])
    async with await App.open(path) as app:
        assert "only work inside a workflow.lua task" in await app.call("app.tools:peek")
        with pytest.raises(UsageError, match="not a workflow"):
            await app.workflows.start("app.tools:peek")


def test_lease_settings_come_from_the_tasks_block():
    opts = engine_options({"tasks": {"lease_seconds": "2s", "heartbeat_seconds": 0.5}}, claim_interval=0.3)
    assert (opts.lease_seconds, opts.heartbeat_seconds, opts.claim_interval) == (2.0, 0.5, 0.3)
    assert engine_options(None).lease_seconds == 15.0
    with pytest.raises(ConfigError, match="tasks.heartbeat_seconds"):
        engine_options({"tasks": {"lease_seconds": 1, "heartbeat_seconds": 1}})
    with pytest.raises(ConfigError, match="unknown key"):
        engine_options({"tasks": {"lease": 1}})


async def test_model_calls_registry_reads_and_sends_are_journaled_steps(tmp_path):
    flow = """return {handler = function()
      local a = llm.generate("one", {model = "app.models:m"})
      local e = registry.get("app.tools:add")
      local ok, err = workflow.send(workflow.id() .. "-peer", "hello", {n = 1})
      return {a = a.text, kind = e.kind, err = err}
    end}"""
    path = write_app(tmp_path, {"chat": flow})
    models = {"namespace": "app.models", "entries": [
        {"name": "m", "kind": "llm.model", "provider": "scripted", "script": [{"text": "first"}]}]}
    (tmp_path / "app" / "src" / "models.yaml").write_text(yaml.safe_dump(models))
    (tmp_path / "app" / "src" / "flows.yaml").write_text(yaml.safe_dump({"namespace": "app.flows", "entries": [
        {"name": "chat", "kind": "workflow.lua", "source": flow, "modules": ["llm", "registry"]}]}))
    async with await App.open(path) as app:
        result = await app.workflows.run("app.flows:chat", None, task_id="w8", timeout=10)
        steps = await app.store.journal_load("w8")
        # Replayed: the scripted model (one reply) is not asked again, the send not repeated.
        await app.store.task_update("w8", status="stranded", owner=None, lease_expires_at=None, result=None)
        await app.tasks.resume("w8")
        assert await app.tasks.wait("w8", timeout=10) == result
    assert result["a"] == "first" and result["kind"] == "function.lua"
    assert "no task with id 'w8-peer'" in result["err"]  # a failed send is a recorded step error
    assert [(s.name, s.status) for s in steps] == [
        ("llm", "ok"), ("registry.get:app.tools:add", "ok"), ("workflow.send:w8-peer", "error")]


async def test_a_cancel_ends_a_waiting_workflow_even_under_pcall(tmp_path):
    flow = """return {handler = function()
      while true do
        local ok, v = pcall(workflow.signal, "never")
      end
    end}"""
    path = write_app(tmp_path, {"stuck": flow})
    async with await App.open(path) as app:
        await app.workflows.start("app.flows:stuck", None, task_id="w9")
        await eventually(lambda: _running_here(app, "w9"), what="the workflow to wait")
        await app.tasks.cancel("w9")
        with pytest.raises(TaskCancelled):
            await app.tasks.wait("w9", timeout=10)
        assert (await app.tasks.get("w9")).status == "cancelled"


async def _running_here(app, task_id: str) -> bool:
    return app.tasks.running() == [task_id]


async def test_a_runaway_loop_fails_the_workflow_with_a_limit_error(tmp_path):
    flow = "return {handler = function() time.sleep(0); while true do end end}"
    path = write_app(tmp_path, {"spin": flow})
    (tmp_path / "app" / "src" / "flows.yaml").write_text(yaml.safe_dump({"namespace": "app.flows", "entries": [
        {"name": "spin", "kind": "workflow.lua", "source": flow, "modules": ["time"],
         "limits": {"max_instructions": 100000}}]}))
    async with await App.open(path) as app:
        with pytest.raises(LuaLimitExceeded, match="instruction limit"):
            await app.workflows.run("app.flows:spin", None, task_id="w10", timeout=10)


async def test_a_task_id_used_by_another_workflow_is_refused(tmp_path):
    path = write_app(tmp_path, {"sum": FLOW, "other": FLOW})
    async with await App.open(path) as app:
        flows = app.workflows
        await flows.run("app.flows:sum", {"n": 1}, task_id="same", timeout=10)
        again = await flows.start("app.flows:sum", {"n": 5}, task_id="same")  # the same one: found, not re-run
        assert again.input == {"n": 1} and again.status == "succeeded"
        with pytest.raises(UsageError, match="'same' is already used by workflow 'app.flows:sum'"):
            await flows.start("app.flows:other", {"n": 1}, task_id="same")


async def test_workflow_send_needs_the_process_send_permission(tmp_path):
    sender = {"name": "sender", "kind": "function.lua", "source": """return {handler = function(args)
      local ok, err = workflow.send(args.id, "go", 1)
      return err
    end}"""}
    path = write_app(tmp_path, {"sum": FLOW}, tools=[sender])
    async with await App.open(path) as app:
        await app.workflows.run("app.flows:sum", {"n": 1}, task_id="target", timeout=10)
        denied = await app.call("app.tools:sender", {"id": "target"}, actor="agent:nobody")
        assert "process.send" in denied and "task:target" in denied
        assert await app.call("app.tools:sender", {"id": "target"}) is None  # the owner may


async def test_the_wall_clock_limit_bounds_each_stretch_between_waits_not_the_whole_workflow(tmp_path):
    flow = 'return {handler = function() for i = 1, 3 do time.sleep("300ms") end; return "woke" end}'
    path = write_app(tmp_path, {"naps": flow})
    (tmp_path / "app" / "src" / "flows.yaml").write_text(yaml.safe_dump({"namespace": "app.flows", "entries": [
        {"name": "naps", "kind": "workflow.lua", "source": flow, "modules": ["time"], "limits": {"timeout": 0.5}}]}))
    async with await App.open(path) as app:
        assert await app.workflows.run("app.flows:naps", None, task_id="w11", timeout=10) == "woke"


async def test_bad_lease_settings_fail_the_open_naming_the_file(tmp_path):
    path = write_app(tmp_path, {"sum": FLOW}, extra={"tasks": {"lease_seconds": 1, "heartbeat_seconds": 2}})
    with pytest.raises(ConfigError, match=r"wippy.yaml: tasks.heartbeat_seconds \(2\) must be > 0 and shorter"):
        await App.open(path)


async def test_a_parent_waits_for_its_stranded_child_until_a_person_resumes_it(tmp_path):
    child = 'return {handler = function() return funcs.call("app.tools:once", {}) end}'
    parent = 'return {handler = function() local r, err = funcs.call("app.flows:child", {}); return {r, err} end}'
    once = {"name": "once", "kind": "function.lua", "source": "return {handler = function() return 7 end}"}
    path = write_app(tmp_path, {"child": child, "parent": parent}, tools=[once])
    async with await App.open(path) as app:
        # The child's first run died inside its non-idempotent call.
        await crashed_in_first_call(app, "p2/1", "app.flows:child", "funcs.call:app.tools:once")
        await app.tasks.recover()
        with pytest.raises(TaskStranded):
            await app.tasks.wait("p2/1", timeout=10)
        await app.workflows.start("app.flows:parent", None, task_id="p2")
        await eventually(lambda: _waiting_on_child(app, "p2"), what="the parent to wait for its child")
        assert (await app.tasks.get("p2")).status == "running"  # waiting, not stranded or failed itself
        await app.tasks.resume("p2/1", retry=True)
        assert await app.tasks.wait("p2", timeout=10) == [7]


async def test_a_cancelled_child_is_an_error_the_parent_can_handle(tmp_path):
    child = 'return {handler = function() return workflow.signal("never") end}'
    parent = """return {handler = function()
      local r, err = funcs.call("app.flows:child", {})
      return "handled: " .. err
    end}"""
    path = write_app(tmp_path, {"child": child, "parent": parent})
    async with await App.open(path) as app:
        await app.workflows.start("app.flows:parent", None, task_id="p3")
        await eventually(lambda: _exists(app, "p3/1"), what="the child to start")
        await app.tasks.cancel("p3/1")
        result = await app.tasks.wait("p3", timeout=10)
    assert result.startswith("handled: child workflow 'app.flows:child' (task 'p3/1') ended:") and "cancelled" in result


async def _waiting_on_child(app, task_id: str) -> bool:
    """Running here with the child step not yet recorded (the child task exists)."""
    return (task_id in app.tasks.running() and not await app.store.journal_load(task_id)
            and await app.store.task_get(f"{task_id}/1") is not None)


async def _exists(app, task_id: str) -> bool:
    return await app.store.task_get(task_id) is not None


async def test_a_workflow_runs_the_same_on_sqlite_and_postgresql(tmp_path, store_url):
    flow = """return {handler = function(args)
      local r = funcs.call("app.tools:add", {a = args.a, b = 1})
      time.sleep("50ms")
      local s = workflow.signal("more")
      return r + s
    end}"""
    path = write_app(tmp_path, {"mixed": flow})
    async with await App.open(path, store=store_url) as app:
        await app.workflows.start("app.flows:mixed", {"a": 1}, task_id="both")
        await app.tasks.signal("both", "more", 40)  # persisted: waits for the workflow to ask
        assert await app.tasks.wait("both", timeout=10) == 42
        assert [s.name for s in await app.store.journal_load("both")] == [
            "funcs.call:app.tools:add", "time.sleep", "signal:more"]


async def test_cancelling_a_parent_cancels_the_child_it_waits_for(tmp_path):
    child = 'return {handler = function() return workflow.signal("never") end}'
    parent = 'return {handler = function() return funcs.call("app.flows:child", {}) end}'
    path = write_app(tmp_path, {"child": child, "parent": parent})
    async with await App.open(path) as app:
        await app.workflows.start("app.flows:parent", None, task_id="p4")
        await eventually(lambda: _exists(app, "p4/1"), what="the child to start")
        await app.tasks.cancel("p4")
        with pytest.raises(TaskCancelled):
            await app.tasks.wait("p4", timeout=10)
        with pytest.raises(TaskCancelled):
            await app.tasks.wait("p4/1", timeout=10)
        assert await app.store.journal_load("p4") == []  # the child step was never recorded
