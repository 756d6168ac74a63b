"""MCP servers' tools as registry tools: listed, offered to agents, checked, validated, journaled."""

from __future__ import annotations

import asyncio
import json

from wippy_agents.registry import kinds

from .conftest import TIME_SERVER, calls_made, counter, mcp_app


def call(name: str, **arguments):
    return {"name": name, "arguments": arguments}


def tool_messages(scripted_call):
    return [m.content for m in scripted_call.messages if m.role == "tool"]


def agents(app):
    return app.agents


async def test_the_time_servers_tools_are_registry_tools_an_agent_calls(make_app):
    script = [{"tool_calls": [call("get_current_time", timezone="Asia/Tokyo")]}, {"text": "It is late in Tokyo."}]
    app = await make_app(mcp_app(script, servers=[{"name": "time", "kind": "mcp.server", "command": TIME_SERVER}],
                                 tools=["app.mcp:time/*"]))
    tool = app.registry.get("app.mcp:time/get_current_time")
    assert tool is not None and tool.kind == "mcp.tool" and tool.meta["type"] == "tool"
    assert tool.data["idempotent"] is True  # readOnlyHint / idempotentHint
    assert tool.data["input_schema"]["required"] == ["timezone"]
    assert {str(e.id) for e in app.registry.find(kind="mcp.tool")} == {"app.mcp:time/get_current_time",
                                                                       "app.mcp:time/convert_time"}
    result = await agents(app).run("app.agents:a", "time in Tokyo?", task_id="t1", timeout=30)
    assert result.answer == "It is late in Tokyo."
    second = agents(app).provider_for("app.models:m").calls[1]
    assert {t.name for t in agents(app).provider_for("app.models:m").calls[0].tools} == {"get_current_time",
                                                                                        "convert_time"}
    answer = json.loads(tool_messages(second)[0])
    assert answer["timezone"] == "Asia/Tokyo" and "datetime" in answer
    steps = [s.name for s in await app.store.journal_load("t1")]
    assert steps == ["model", "tool:get_current_time", "model"]


async def test_a_tool_call_the_policy_does_not_allow_is_refused_and_audited(make_app, tmp_path):
    rules = [{"effect": "allow", "actions": ["tool.call"], "resources": ["app.mcp:counter/whoami"]}]
    script = [{"tool_calls": [call("bump", note="x")]}, {"tool_calls": [call("whoami")]}, {"text": "done"}]
    app = await make_app(mcp_app(script, servers=[counter(tmp_path)], tools=["app.mcp:counter/*"], rules=rules))
    await agents(app).run("app.agents:a", "go", timeout=30)
    calls = agents(app).provider_for("app.models:m").calls
    assert tool_messages(calls[1])[0].startswith("ERROR: calling tool 'app.mcp:counter/bump' is not allowed")
    assert json.loads(tool_messages(calls[2])[-1])["pid"] > 0
    assert calls_made(tmp_path) == []  # the refused call never reached the server
    denied = [r for r in await app.store.audit_list(limit=50) if r.decision == "deny"]
    assert [(r.action, r.resource) for r in denied] == [("tool.call", "app.mcp:counter/bump")]


async def test_arguments_are_validated_and_server_errors_come_back_as_fixable_tool_errors(make_app, tmp_path):
    script = [{"tool_calls": [call("bump", note=3)]}, {"tool_calls": [call("fail", message="on purpose")]},
              {"tool_calls": [call("bump", note="fixed")]}, {"text": "done"}]
    app = await make_app(mcp_app(script, servers=[counter(tmp_path)], tools=["app.mcp:counter/*"]))
    result = await agents(app).run("app.agents:a", "go", timeout=30)
    assert result.answer == "done"
    calls = agents(app).provider_for("app.models:m").calls
    assert "argument 'note': expected string, got 3 (integer)" in tool_messages(calls[1])[0]
    failed = tool_messages(calls[2])[-1]
    assert failed.startswith("ERROR: tool 'app.mcp:counter/fail' failed: ") and "asked to fail: on purpose" in failed
    assert '"count": 1' in tool_messages(calls[3])[-1]
    assert calls_made(tmp_path) == ["fixed"]


async def test_the_prefix_and_tool_globs_shape_what_the_model_sees(make_app, tmp_path):
    server = counter(tmp_path, prefix="c_", tools=["bump", "who*"])
    app = await make_app(mcp_app([{"text": "ok"}], servers=[server], tools=["app.mcp:counter/*"]))
    assert sorted(e.id.name for e in app.registry.find(kind="mcp.tool")) == ["counter/bump", "counter/whoami"]
    await agents(app).run("app.agents:a", "go", timeout=30)
    seen = agents(app).provider_for("app.models:m").calls[0].tools
    assert sorted(t.name for t in seen) == ["c_bump", "c_whoami"]


def test_the_mcp_server_kind_has_a_schema_and_needs_command_or_url():
    schema = kinds.schema("mcp.server")
    assert {"command", "env", "url", "headers", "tools", "prefix"} <= set(schema["properties"])
    handler = kinds.get("mcp.server")
    from wippy_agents.registry import Entry, EntryId

    both = Entry(id=EntryId("app.mcp:x"), kind="mcp.server", data={"command": ["a"], "url": "http://h/mcp"})
    neither = Entry(id=EntryId("app.mcp:x"), kind="mcp.server", data={"prefix": "p_"})
    typo = Entry(id=EntryId("app.mcp:x"), kind="mcp.server", data={"command": ["a"], "enviroment": {}})
    assert handler.schema_problems(both) and handler.schema_problems(neither)
    assert "enviroment" in str(handler.schema_problems(typo)[0])


async def test_wippy_registry_list_shows_the_tools_a_node_listed(tmp_path, capsys):
    from wippy_agents.app import App
    from wippy_agents.cli import main

    app = tmp_path / "app.yaml"
    app.write_text(mcp_app([{"text": "-"}], servers=[{"name": "time", "kind": "mcp.server", "command": TIME_SERVER}],
                           tools=["app.mcp:time/*"]), encoding="utf-8")
    async with await App.open(app, store=f"sqlite:///{tmp_path / 's.db'}"):
        pass  # a node lists the server's tools once and stores them as registry versions
    code = await asyncio.to_thread(main, ["registry", "list", "app.mcp:*", "--app", str(app), "--store", f"sqlite:///{tmp_path / 's.db'}"])
    out, err = capsys.readouterr()
    assert code == 0, err
    for entry_id in ("app.mcp:time ", "app.mcp:time/get_current_time", "app.mcp:time/convert_time"):
        assert entry_id in out + " "
    assert out.count("mcp.tool") == 2


async def test_an_agent_cannot_write_an_mcp_server_entry(make_app, tmp_path):
    from wippy_agents.errors import PermissionDenied
    from wippy_agents.security.actor import Actor

    rules = [{"effect": "allow", "actions": ["registry.*", "tool.call"], "resources": ["*"]}]
    app = await make_app(mcp_app([{"text": "-"}], servers=[], tools=[], rules=rules))
    cs = app.registry.changeset(author="agent:app.agents:a", actor=Actor.agent("app.agents:a", ["app.security:p"]))
    cs.create({"id": "app.mcp:evil", "kind": "mcp.server", "command": ["sh", "-c", "echo pwned"]})
    import pytest

    with pytest.raises(PermissionDenied, match="only a person"):
        await app.registry.apply(cs)
