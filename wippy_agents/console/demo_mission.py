"""Demo stages 2–5: Lua workers, hot reload, an agent writing its own tool, a crash mid-task.

Every stage writes a small app into the demo's scratch directory and runs it
on the real layers (SQLite store, registry with watcher, Lua sandbox and
processes, durable tasks, the scripted model), then checks what it narrated.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from ..app import App
from ..errors import ReceiveTimeout
from ..store import open_store
from .demo import until

__all__ = ["mission_stages"]


def mission_stages() -> list[tuple[str, Any]]:
    return [
        ("A supervised Lua worker crashes and its host restarts it", lua_worker_stage),
        ("A config file is edited; a running Lua process picks up the change", hot_reload_stage),
        ("An agent that lacks a tool writes one in Lua, under a policy", self_extension_stage),
        ("The node is killed mid-task; the task resumes from its journal", crash_resume_stage),
    ]


def _write_app(root: Path, files: dict[str, Any]) -> Path:
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "wippy.yaml").write_text(yaml.safe_dump({"sources": ["src"]}))
    for name, doc in files.items():
        (root / "src" / name).write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return root


# -- stage 2 -------------------------------------------------------------------

COUNTER = """
return {handler = function()
  process.registry.register("counter")
  local total = 0
  local inbox = process.inbox()
  while true do
    local msg = inbox:receive()
    if msg:topic() == "add" then
      total = total + msg:payload().n
      process.send(msg:from(), "total", {total = total, pid = process.pid()})
    elseif msg:topic() == "crash" then
      error("injected crash with total " .. total)
    end
  end
end}
"""


async def lua_worker_stage(demo) -> None:
    root = _write_app(demo.workdir / "workers", {"workers.yaml": {"namespace": "demo", "entries": [
        # hosts restart nobody by default (Erlang spawn, SPEC §4): this one opts in
        {"name": "workers", "kind": "process.host", "restart": "transient",
         "meta": {"description": "dynamic Lua workers, restarted after a crash"}},
        {"name": "counter", "kind": "process.lua", "source": COUNTER},
    ]}})
    app = await App.open(root)
    try:
        procs = app.processes
        seen: dict[str, Any] = {}

        async def script(proc) -> None:
            pid = await procs.spawn("demo:counter", "demo:workers")
            seen["first"] = pid
            proc.monitor(pid)
            proc.send(pid, "add", {"n": 2})
            seen["total1"] = (await proc.receive("total", timeout=5)).payload["total"]
            proc.send(pid, "crash", None)
            down = (await proc.receive("DOWN", timeout=5)).payload
            seen["reason"] = str(down.reason)
            for _ in range(500):
                now = app.node.whereis("counter")
                if now not in (None, pid):
                    break
                try:
                    await proc.receive("never", timeout=0.01)
                except ReceiveTimeout:
                    pass
            seen["second"] = app.node.whereis("counter")
            proc.send("counter", "add", {"n": 5})
            seen["total2"] = (await proc.receive("total", timeout=5)).payload["total"]

        demo.say("spawning a Lua counter on the [bold]demo:workers[/] host (a simple_one_for_one supervisor) …")
        done = app.node.spawn(script)
        await until(lambda: not app.node.is_alive(done), timeout=20)
        demo.say(f"counter {seen.get('first')} answered total={seen.get('total1')}; injecting a Lua error …")
        demo.say(f"its monitor saw it die: {seen.get('reason', '?')[:70]}")
        demo.check("the Lua worker ran and answered over its mailbox", seen.get("total1") == 2)
        demo.check("the crash was observed as a DOWN with the Lua error", "injected crash" in seen.get("reason", ""))
        demo.check(f"its host restarted it as {seen.get('second')} under the same name, with fresh state",
                   seen.get("second") not in (None, seen.get("first")) and seen.get("total2") == 5)
    finally:
        await app.close()


# -- stage 3 -------------------------------------------------------------------

GREETER = """
return {handler = function(observer)
  local updates = registry.watch("demo.config:*")
  local function report(version)
    local entry = registry.get("demo.config:greeting")
    process.send(observer, "greeting", {text = entry.data.text, version = version})
  end
  report(registry.version())
  while true do
    local change = updates:receive()
    report(change.version)
  end
end}
"""


def _config(text: str) -> dict[str, Any]:
    return {"namespace": "demo.config", "entries": [
        {"name": "greeting", "kind": "registry.entry", "meta": {"description": "what the greeter says"}, "text": text},
    ]}


async def hot_reload_stage(demo) -> None:
    root = _write_app(demo.workdir / "reload", {
        "config.yaml": _config("hello"),
        "greeter.yaml": {"namespace": "demo", "entries": [
            {"name": "workers", "kind": "process.host"},
            {"name": "greeter", "kind": "process.lua", "source": GREETER, "modules": ["registry"]},
        ]},
    })
    watch_errors: list[Exception] = []
    app = await App.open(root, watch=True, on_watch_error=watch_errors.append)
    try:
        procs = app.processes
        heard: list[tuple[float, dict[str, Any]]] = []

        async def observer(proc) -> None:
            await procs.spawn("demo:greeter", "demo:workers", proc.pid)
            while True:
                msg = await proc.receive("greeting")
                heard.append((time.perf_counter(), msg.payload))

        app.node.spawn(observer)
        await until(lambda: bool(heard), timeout=10)
        demo.say(f"the greeter process reads demo.config:greeting → {heard[0][1]['text']!r}" if heard else
                 "the greeter did not report")
        demo.say("editing src/config.yaml on disk (as an editor would) …")
        before = app.registry.version
        saved = time.perf_counter()
        (root / "src" / "config.yaml").write_text(yaml.safe_dump(_config("hello, hot reload"), sort_keys=False))
        ok = await until(lambda: any(p["text"] == "hello, hot reload" for _, p in heard), timeout=10)
        took = next((t - saved for t, p in heard if p["text"] == "hello, hot reload"), None)
        if ok:
            demo.say(f"the running process saw the new text {took * 1000:.0f} ms after the save, "
                     f"as registry version {heard[-1][1]['version']}")
        demo.check("the saved file became a new registry version", app.registry.version == before + 1)
        demo.check("the running process picked up the change without a restart", ok)
        demo.say("saving a broken file: the old version must stay live …")
        before = app.registry.version
        (root / "src" / "config.yaml").write_text("namespace: demo.config\nentries:\n  - name: greeting\n    kind: [oops\n")
        reported = await until(lambda: bool(watch_errors), timeout=10)
        if reported:
            demo.say(f"the watcher reported: {_short(str(watch_errors[0]))}")
        entry = app.registry.get("demo.config:greeting")
        demo.check("a bad file changed nothing: the error names the file and line, the old version stays live",
                   reported and "config.yaml:" in str(watch_errors[0]) and app.registry.version == before
                   and entry is not None and entry.data.get("text") == "hello, hot reload")
    finally:
        await app.close()


# -- stage 4 -------------------------------------------------------------------

BAD_SLUGIFY = "return {handler = function(a) return string.lower(a.text):gsub('[^%w]+', '-') end"  # missing `}`
GOOD_SLUGIFY = """return {handler = function(a)
  local s = string.lower(a.text):gsub("[^%w]+", "-"):gsub("^-+", ""):gsub("-+$", "")
  return s
end}"""


def _create_tool(source: str) -> dict[str, Any]:
    return {"name": "create_tool", "arguments": {
        "id": "demo.tools:slugify",
        "description": "Turn a title into a URL slug",
        "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        "source": source,
        "examples": [{"input": {"text": "Hello World"}, "output": "hello-world"},
                     {"input": {"text": "  Wippy, Agents!  "}, "output": "wippy-agents"}],
        "idempotent": True,
    }}


def _builder_app(root: Path) -> Path:
    return _write_app(root, {"agents.yaml": {"namespace": "demo", "entries": [
        {"name": "builder-model", "kind": "llm.model", "provider": "scripted", "context_window": 32000, "script": [
            {"text": "I have no slug tool, so I will write one.", "tool_calls": [_create_tool(BAD_SLUGIFY)]},
            {"text": "The sandbox says it does not compile; fixing the missing brace.",
             "tool_calls": [_create_tool(GOOD_SLUGIFY)]},
            {"tool_calls": [{"name": "slugify", "arguments": {"text": "Agents That Write Their Own Tools"}}]},
            {"text": "Your slug is `agents-that-write-their-own-tools`."},
        ]},
        {"name": "toolsmith", "kind": "security.policy", "rules": [
            {"effect": "allow", "actions": ["registry.read"], "resources": ["demo.*", "wippy.self:*"]},
            {"effect": "allow", "actions": ["registry.write"], "resources": ["demo.tools:*"]},
            {"effect": "allow", "actions": ["tool.call"], "resources": ["wippy.self:create_tool", "demo.tools:*"]},
            {"effect": "allow", "actions": ["lua.module"], "resources": ["json"]},
        ]},
        {"name": "builder", "kind": "agent", "meta": {"description": "builds the tools it lacks"},
         "model": "demo:builder-model", "prompt": "You build Lua tools when you lack one.",
         "tools": ["wippy.self:create_tool", "demo.tools:*"], "policies": ["demo:toolsmith"], "max_turns": 8},
    ]}})


async def self_extension_stage(demo) -> None:
    root = _builder_app(demo.workdir / "builder")
    app = await App.open(root)
    try:
        agents = app.agents
        demo.say("asking [bold]demo:builder[/] for a slug; it has no slug tool, only wippy.self:create_tool …")
        result = await agents.run("demo:builder", "Slugify: Agents That Write Their Own Tools", task_id="demo-builder")
        steps = await app.store.journal_load("demo-builder")
        tool_steps = [s for s in steps if "create_tool" in s.name]
        first = str(tool_steps[0].result if tool_steps else "")
        demo.say(f"attempt 1 went back to the model as: {_short(first)}")
        demo.check("the sandbox rejected the first attempt with a fixable compile error",
                   len(tool_steps) == 2 and "compile" in first.lower())
        entry = app.registry.get("demo.tools:slugify")
        demo.check("the second attempt passed its examples and went live as a registry entry",
                   entry is not None and entry.origin == "runtime")
        history = await app.registry.history(limit=5)
        by = next((h for h in history if any(c.get("id") == "demo.tools:slugify" for c in h.changes)), None)
        if by is not None:
            demo.say(f"registry version {by.version} by {by.author!r}: {by.reason}")
        demo.check("the new tool was used on the very next turn",
                   any(s.name.endswith("slugify") or "demo.tools:slugify" in s.name for s in steps))
        demo.say(f"answer: {result.answer}")
        demo.check("the agent answered with the new tool's result",
                   result.ok and "agents-that-write-their-own-tools" in result.answer)
    finally:
        await app.close()
    app = await App.open(root, recover=False)
    try:
        demo.check("after a restart the tool is still there (it lives in the store)",
                   await app.call("demo.tools:slugify", {"text": "Still Here"}) == "still-here")
    finally:
        await app.close()


def _short(text: str, limit: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- stage 5 -------------------------------------------------------------------

def _slow_app(root: Path) -> Path:
    return _write_app(root, {"agents.yaml": {"namespace": "demo", "entries": [
        {"name": "slow-model", "kind": "llm.model", "provider": "scripted", "context_window": 32000, "script": [
            {"text": "Starting the long job.", "tool_calls": [{"name": "long_job", "arguments": {"seconds": 3}}]},
            {"text": "The long job finished: all done."},
        ]},
        {"name": "long_job", "kind": "function.lua", "meta": {"type": "tool", "description": "a slow, safe job"},
         "input_schema": {"type": "object", "properties": {"seconds": {"type": "number"}}},
         "idempotent": True, "modules": ["time"],
         "source": "return {handler = function(a) time.sleep(a.seconds .. 's'); return 'done' end}"},
        {"name": "worker-policy", "kind": "security.policy", "rules": [
            {"effect": "allow", "actions": ["tool.call"], "resources": ["demo:long_job"]},
            {"effect": "allow", "actions": ["lua.module"], "resources": ["time"]},
        ]},
        {"name": "worker", "kind": "agent", "model": "demo:slow-model", "prompt": "You run long jobs.",
         "tools": ["demo:long_job"], "policies": ["demo:worker-policy"]},
    ]}})


async def _node(root: Path, task_id: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wippy_agents.cli", "agent", "run", "demo:worker", "run the long job",
        "--task-id", task_id, "--app", str(root),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"})


async def crash_resume_stage(demo) -> None:
    root = _slow_app(demo.workdir / "crash")
    task_id = "demo-crash"
    demo.say("starting a node: `wippy agent run demo:worker … --task-id demo-crash` (a separate OS process)")
    node = await _node(root, task_id)
    store = None
    try:
        for _ in range(2400):  # the store appears once the node has opened it (a minute at most)
            if (root / ".wippy" / "state.db").exists():
                break
            await asyncio.sleep(0.025)
        store = await open_store(f"sqlite:///{root / '.wippy' / 'state.db'}")

        async def steps() -> list[Any]:
            try:
                return await store.journal_load(task_id)
            except Exception:  # noqa: BLE001 - the task row may not exist yet
                return []

        journal: list[Any] = []
        for _ in range(3000):  # up to a minute: a loaded machine starts Python slowly
            journal = await steps()
            if any(s.name == "model" and s.status == "ok" for s in journal):
                break
            await asyncio.sleep(0.02)
        model_done = any(s.name == "model" and s.status == "ok" for s in journal)
        await asyncio.sleep(0.5)  # the tool now sleeps for 3 s: it is mid-run (idempotent steps journal at the end)
        journal = await steps()
        in_flight = not any("long_job" in s.name for s in journal)
        demo.say(f"journal so far: {', '.join(f'{s.seq}:{s.name}({s.status})' for s in journal)}; "
                 "long_job is running")
        demo.say("[bold red]SIGKILL[/] to the node while its tool call is in flight …")
        node.send_signal(signal.SIGKILL)
        await node.wait()
        demo.check("the node was killed mid-task, between the model's reply and the tool's result",
                   node.returncode == -signal.SIGKILL and model_done and in_flight)
        demo.say("starting a fresh node with the same task id …")
        node = await _node(root, task_id)
        out, err = await asyncio.wait_for(node.communicate(), timeout=60)
        text, log = out.decode(), err.decode()
        journal = await steps()
        models = [s for s in journal if s.name == "model"]
        demo.say(f"answer: {text.strip().splitlines()[-1] if text.strip() else '(none)'}")
        demo.say(f"journal now: {', '.join(f'{s.seq}:{s.name}({s.status})' for s in journal)}")
        demo.check("the resumed task finished with the expected answer",
                   node.returncode == 0 and "all done" in text)
        replayed = next((line for line in log.splitlines() if "replayed" in line), log.strip()[-200:])
        demo.say(f"the resumed node reports: {_short(replayed)}")
        demo.check("no model call was repeated: 2 model steps in the journal, 1 answered from it",
                   len(models) == 2 and "(1 replayed" in log)
        demo.check("the in-flight tool call (idempotent: true) ran again and was journaled once",
                   sum("long_job" in s.name for s in journal) == 1)
    finally:
        if node.returncode is None:
            node.kill()
            await node.wait()
        if store is not None:
            await store.close()
