"""A run stopped mid-way resumes from its journal: no model call twice, the same answer."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from wippy_agents.agents import python_tool
from wippy_agents.app import App

from .conftest import write_app
from .helpers import app_text, call, until

SCRIPT = [
    {"tool_calls": [call("add", x=1, y=2)]},
    {"tool_calls": [call("gate", step=1)]},
    {"tool_calls": [call("add", x=3, y=4)]},
    {"text": "sum of sums: 10"},
]

GATE = {"entered": None, "release": None}


@python_tool("test.crash:gate", description="waits for the test", input_schema={"type": "object"}, idempotent=True)
async def gate(args, ctx):
    if GATE["entered"] is not None:
        GATE["entered"].set()
        await asyncio.wait_for(GATE["release"].wait(), 10)
    return "gate passed"


def _text() -> str:
    return app_text(SCRIPT, agent={"tools": ["app.tools:*", "test.crash:gate"]})


async def _uninterrupted(tmp_path: Path) -> str:
    GATE["entered"] = GATE["release"] = None
    path = write_app(tmp_path, _text(), name="plain.yaml")
    async with await App.open(path, store=f"sqlite:///{tmp_path / 'plain.db'}") as app:
        result = await app.agents.run("app.agents:a", "add things", timeout=30)
        app.agents.provider_for("app.models:m").assert_complete()
        return result.answer


async def test_a_run_stopped_mid_way_resumes_without_repeating_model_calls(tmp_path):
    expected = await _uninterrupted(tmp_path)
    store = f"sqlite:///{tmp_path / 'crash.db'}"
    path = write_app(tmp_path, _text())
    GATE["entered"], GATE["release"] = asyncio.Event(), asyncio.Event()
    first = await App.open(path, store=store)
    try:
        await first.agents.start("app.agents:a", "add things", task_id="crash-1")
        await asyncio.wait_for(GATE["entered"].wait(), 10)
        made_before = len(first.agents.provider_for("app.models:m").calls)
        # finished steps may reach the store a moment after they return (write-behind): wait for them
        await until(lambda: _journaled(first, "crash-1"), lambda n: n >= 3)
        # The run's process dies mid-tool (untrappable kill): nothing more is written for it.
        pid = first.node.whereis("task:crash-1")
        assert pid is not None
        first.node.exit(pid, "kill")
    finally:
        GATE["entered"] = GATE["release"] = None
        await first.close()
    assert made_before == 2
    assert (await _task_status(store, "crash-1")) == "pending"  # not finished: released at close for any node

    async with await App.open(path, store=store) as second:  # recover=True resumes the released task
        result = await second.agents.result("crash-1", timeout=30)
        model = second.agents.provider_for("app.models:m")
        assert [c.index for c in model.calls] == [2, 3]  # only the calls not journaled yet
        assert result.answer == expected == "sum of sums: 10"
        steps = [s.name for s in await second.store.journal_load("crash-1")]
        assert steps.count("model") == 4 and steps.count("tool:gate") == 1


async def _journaled(app, task_id: str) -> int:
    return len([s for s in await app.store.journal_load(task_id) if s.status == "ok"])



async def _task_status(store_url: str, task_id: str) -> str:
    from wippy_agents.store import open_store

    store = await open_store(store_url)
    try:
        return (await store.task_get(task_id)).status
    finally:
        await store.close()


SLOW_APP = """
namespace: app.security
entries:
  - name: open
    kind: security.policy
    rules: [{effect: allow, actions: [tool.call, lua.module], resources: ["*"]}]
---
namespace: app.models
entries:
  - name: m
    kind: llm.model
    provider: scripted
    script:
      - {text: "step one. ", tool_calls: [{name: word_count, arguments: {text: "a b c"}}]}
      - {text: "waiting. ", tool_calls: [{name: slow, arguments: {}}]}
      - {text: "The text has 3 words."}
---
namespace: app.tools
entries:
  - name: word_count
    kind: function.lua
    meta: {type: tool, description: "Count words"}
    idempotent: true
    source: |
      return {handler = function(a) local n = 0; for _ in a.text:gmatch("%S+") do n = n + 1 end; return n end}
    input_schema: {type: object, properties: {text: {type: string}}, required: [text]}
  - name: slow
    kind: function.lua
    meta: {type: tool, description: "Takes a while"}
    idempotent: true
    modules: [time]
    source: |
      return {handler = function(a) time.sleep(SLEEP) return "slept" end}
    input_schema: {type: object}
---
namespace: app.agents
entries:
  - name: a
    kind: agent
    model: app.models:m
    prompt: "You count words."
    tools: [app.tools:*]
    policies: [app.security:open]
"""


def _journal_rows(db: Path, task_id: str) -> int:
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("select count(*) from journal where task_id = ? and status = 'ok'", (task_id,)).fetchone()[0]
    finally:
        conn.close()


def _wippy(tmp_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "wippy_agents.cli", "agent", "run", "--app", str(tmp_path / "slow.yaml"),
            "--store", f"sqlite:///{tmp_path / 'cli.db'}", *args]


def test_sigkill_of_wippy_agent_run_then_rerun_with_the_task_id_resumes(tmp_path):
    (tmp_path / "slow.yaml").write_text(SLOW_APP.replace("SLEEP", "1.5"), encoding="utf-8")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = _wippy(tmp_path, "app.agents:a", "count: a b c", "--task-id", "kill-me")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    try:
        seen = b""
        deadline = time.monotonic() + 60
        while b"waiting." not in seen:  # the second model reply streamed: the slow tool runs now
            assert time.monotonic() < deadline, seen
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, (seen, proc.stderr.read())
            seen += chunk
        # finished steps reach the store a moment after they return (write-behind): kill once they are there
        while _journal_rows(tmp_path / "cli.db", "kill-me") < 3:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
        proc.stdout.close()
        proc.stderr.close()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=90)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("The text has 3 words.")
    assert "stop: final" in done.stderr
    assert "model calls: 1 (2 replayed from the journal)" in done.stderr


LUA_AGENT_APP = """
namespace: app.security
entries:
  - name: open
    kind: security.policy
    rules: [{effect: allow, actions: [tool.call, lua.module], resources: ["*"]}]
---
namespace: app.models
entries:
  - name: m
    kind: llm.model
    provider: scripted
    script: [{text: "first"}, {text: "second"}]
---
namespace: app.agents
entries:
  - name: planner
    kind: agent
    model: app.models:m
    policies: [app.security:open]
    modules: [llm, funcs]
    source: |
      return {handler = function(input)
        local a = llm.generate("one")
        local g, err = funcs.call("test.crash:gate", {step = 2})
        if not g then return nil, err end
        local b = llm.generate("two")
        return a.text .. " " .. g .. " " .. b.text
      end}
"""


async def test_a_lua_agent_resumes_from_its_journal(tmp_path):
    store = f"sqlite:///{tmp_path / 'lua.db'}"
    path = write_app(tmp_path, LUA_AGENT_APP, name="lua.yaml")
    GATE["entered"], GATE["release"] = asyncio.Event(), asyncio.Event()
    first = await App.open(path, store=store)
    try:
        await first.agents.start("app.agents:planner", "go", task_id="lua-crash")
        await asyncio.wait_for(GATE["entered"].wait(), 10)
        await until(lambda: _journaled(first, "lua-crash"), lambda n: n >= 1)
        first.node.exit(first.node.whereis("task:lua-crash"), "kill")
    finally:
        GATE["entered"] = GATE["release"] = None
        await first.close()
    async with await App.open(path, store=store) as second:
        result = await second.agents.result("lua-crash", timeout=30)
        assert result.answer == "first gate passed second"
        assert [c.index for c in second.agents.provider_for("app.models:m").calls] == [1]
        steps = [s.name for s in await second.store.journal_load("lua-crash")]
        assert steps == ["llm", "call:test.crash:gate", "llm"]
