"""`wippy mcp serve` under the official SDK's stdio client: list, call a Lua tool, an agent, refusals."""

from __future__ import annotations

import sys

import yaml
from mcp import Client, StdioServerParameters

ADD = "return {handler = function(a) return {sum = a.x + a.y} end}"
NUM2 = {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"]}

DOCS = [
    {"namespace": "app.security", "entries": [
        {"name": "mcp", "kind": "security.policy", "rules": [
            {"effect": "allow", "actions": ["tool.call"], "resources": ["app.tools:add", "app.agents:helper",
                                                                         "app.other:*"]},
            {"effect": "allow", "actions": ["lua.module"], "resources": ["*"]}]},
        {"name": "agent", "kind": "security.policy", "rules": [
            {"effect": "allow", "actions": ["tool.call", "lua.module"], "resources": ["*"]}]}]},
    {"namespace": "app.tools", "entries": [
        {"name": "add", "kind": "function.lua", "meta": {"type": "tool", "description": "Add x and y"},
         "source": ADD, "input_schema": NUM2},
        {"name": "secret", "kind": "function.lua", "meta": {"type": "tool", "description": "Not for MCP clients"},
         "source": "return {handler = function() return 'the secret' end}", "input_schema": {"type": "object"}}]},
    {"namespace": "app.other", "entries": [
        {"name": "hidden", "kind": "function.lua", "meta": {"type": "tool", "description": "Outside --tools"},
         "source": "return {handler = function() return 'hidden' end}", "input_schema": {"type": "object"}}]},
    {"namespace": "app.models", "entries": [
        {"name": "m", "kind": "llm.model", "provider": "scripted", "context_window": 100000, "script": [
            {"tool_calls": [{"name": "add", "arguments": {"x": 20, "y": 22}}]}, {"text": "The sum is 42."}]}]},
    {"namespace": "app.agents", "entries": [
        {"name": "helper", "kind": "agent", "meta": {"description": "Adds numbers for you"}, "model": "app.models:m",
         "prompt": "Add.", "tools": ["app.tools:add"], "policies": ["app.security:agent"]}]},
]


async def test_an_mcp_client_lists_and_calls_the_apps_tools_and_agents_within_the_policy(tmp_path):
    app = tmp_path / "app.yaml"
    app.write_text("\n---\n".join(yaml.safe_dump(d, sort_keys=False) for d in DOCS), encoding="utf-8")
    params = StdioServerParameters(command=sys.executable, args=[
        "-m", "wippy_agents.cli", "mcp", "serve", "--app", str(app), "--store", f"sqlite:///{tmp_path / 's.db'}",
        "--tools", "app.tools:*", "--agent", "app.agents:helper", "--policy", "app.security:mcp"], cwd=str(tmp_path))
    async with Client(params, cache=None, read_timeout_seconds=60) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert set(listed) == {"add", "helper"}  # secret: not allowed; hidden: outside --tools
        assert listed["add"].input_schema == NUM2 and listed["add"].description == "Add x and y"
        assert listed["helper"].input_schema["required"] == ["task"]

        added = await client.call_tool("add", {"x": 2, "y": 3})
        assert not added.is_error and added.structured_content == {"sum": 5}

        bad = await client.call_tool("add", {"x": "two", "y": 3})
        assert bad.is_error and "argument 'x': expected number" in bad.content[0].text

        answer = await client.call_tool("helper", {"task": "add 20 and 22"})
        assert not answer.is_error, answer.content[0].text
        assert answer.structured_content["answer"] == "The sum is 42."

        refused = await client.call_tool("secret", {})
        assert refused.is_error and "not allowed" in refused.content[0].text
        outside = await client.call_tool("hidden", {})
        assert outside.is_error and outside.content[0].text.startswith("unknown tool 'hidden'")

    from wippy_agents.store import open_store

    store = await open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        denied = [(r.actor, r.action, r.resource) for r in await store.audit_list(limit=100) if r.decision == "deny"]
        tasks = await store.task_list()
    finally:
        await store.close()
    assert ("mcp:serve", "tool.call", "app.tools:secret") in denied
    ran = [t for t in tasks if t.target == "app.agents:helper"]
    assert len(ran) == 1 and ran[0].status == "succeeded"  # the agent-as-tool ran as a durable task
