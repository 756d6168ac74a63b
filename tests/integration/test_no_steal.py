"""A one-shot command and a `wippy run` node side by side, both with default names: no steal (SPEC §7).

Before issue 12 every process was node ``local`` and a starting ``wippy run``
resumed every task of that name without looking at the lease: the agent
run's finished tool result was thrown away and its task stranded.
"""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from wippy_agents.store import open_store

from ..agents.helpers import app_text, call
from .wf_support import NodeProc, until

SLOW = {"name": "slow", "kind": "function.lua", "meta": {"type": "tool", "description": "Sleep, then answer"},
        "source": "return {handler = function(a) time.sleep('2s'); return {slept = a.n} end}", "modules": ["time"],
        "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}
SCRIPT = [{"tool_calls": [call("slow", n=1)]}, {"text": "slept well"}]


@pytest.mark.timeout(90)
@pytest.mark.postgres
async def test_wippy_run_started_beside_a_running_agent_leaves_its_task_alone(tmp_path, store_url):
    app = tmp_path / "app.yaml"
    app.write_text(app_text(SCRIPT, tools=[SLOW]))
    store = await open_store(store_url)
    push = await asyncio.create_subprocess_exec(  # a deploy: on a shared store only a deploy publishes files
        sys.executable, "-m", "wippy_agents.cli", "registry", "push", "--app", str(app), "--store", store_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await push.communicate()
    assert push.returncode == 0 and b"published registry version 1" in err, err
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wippy_agents.cli", "agent", "run", "app.agents:a", "sleep", "--task-id", "t1",
        "--app", str(app), "--store", store_url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ})
    node = None
    try:
        await until(lambda: _in_tool(store), timeout=30, what="the agent run to enter its tool")
        node = await NodeProc.start("run", "--app", str(app), "--store", store_url, env={})
        assert await node.wait_ready(), node.log()
        out, err = await asyncio.wait_for(agent.communicate(), 60)
        assert agent.returncode == 0, err.decode()
        task = await store.task_get("t1")
        steps = await store.journal_load("t1")
        assert await node.stop() == 0, node.log()
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
        if node is not None:
            node.kill()
            await node.finish()
        await store.close()
    assert out.decode().strip() == "slept well"
    assert task.status == "succeeded" and task.epoch == 1  # never claimed by anyone else
    assert [(s.name, s.status) for s in steps] == [("model", "ok"), ("tool:slow", "ok"), ("model", "ok")]
    assert "t1" not in node.log()


async def _in_tool(store) -> bool:
    if await store.task_get("t1") is None:
        return False
    return any(s.name == "tool:slow" for s in await store.journal_load("t1"))
