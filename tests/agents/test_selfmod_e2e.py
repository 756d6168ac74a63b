"""End to end on the scripted model: an agent lacking a tool writes it, gets its syntax error back,
fixes it, calls the new tool on the next turn and answers; a restart keeps the tool; a rollback by a
running agent removes it and that agent stops seeing it."""

from __future__ import annotations

from ..security.apps import SLUGIFY_BROKEN, agent, app_yaml, open_app, slug_args

WRITER = [
    {"text": "I have no slug tool; I will write one.", "tool_calls": [
        {"name": "create_tool", "arguments": slug_args(source=SLUGIFY_BROKEN)}]},
    {"text": "Fixing the syntax.", "tool_calls": [{"name": "create_tool", "arguments": slug_args()}]},
    {"tool_calls": [{"name": "slugify", "arguments": {"text": "Hello Agents World"}}]},
    {"text": "The slug is hello-agents-world."},
]
# A second agent (own model) uses the tool, rolls the registry back to before it existed, tries again.
UNDOER = [
    {"tool_calls": [{"name": "slugify", "arguments": {"text": "A B"}}]},
    {"tool_calls": [{"name": "rollback", "arguments": {"version": 1}}]},
    {"tool_calls": [{"name": "slugify", "arguments": {"text": "C D"}}]},
    {"text": "The tool is gone."},
]
EXTRA = [
    {"namespace": "app.models", "entries": [{"name": "m2", "kind": "llm.model", "provider": "scripted",
                                             "context_window": 100000, "script": UNDOER}]},
    {"namespace": "app.agents", "entries": [{**agent("undoer", ["app.security:toolsmith"]), "model": "app.models:m2"}]},
]


def tool_results(scripted_call):
    return [m.content for m in scripted_call.messages if m.role == "tool"]


def tool_names(scripted_call):
    return {t.name for t in scripted_call.tools}


async def test_an_agent_writes_fixes_and_uses_a_tool_which_survives_a_restart_until_rolled_back(tmp_path):
    text = app_yaml(WRITER, extra_docs=EXTRA)
    app = await open_app(tmp_path, text)
    try:
        assert app.registry.version == 1
        agents = app.agents
        result = await agents.run("app.agents:smith", "Make a slug of 'Hello Agents World'.", task_id="w1", timeout=30)
        assert (result.stop_reason, result.answer, result.turns) == ("final", "The slug is hello-agents-world.", 4)
        model = agents.provider_for("app.models:m")
        model.assert_complete()
        calls = model.calls
        assert len(calls) == len(WRITER)  # registering a tool cost no extra model round trip
        # turn 1: no slugify yet; the syntax error went back to the model as the tool's result
        assert "slugify" not in tool_names(calls[0]) and "create_tool" in tool_names(calls[0])
        [error] = tool_results(calls[1])
        assert error.startswith("ERROR: ") and "does not compile" in error and "app.generated:slugify:1:" in error
        assert "slugify" not in tool_names(calls[1])
        # turn 3: the tool is live, listed, and its call answered
        assert "slugify" in tool_names(calls[2])
        assert '"version": 2' in tool_results(calls[2])[-1]
        assert tool_results(calls[3])[-1] == "hello-agents-world"
        [record] = [r for r in await app.registry.history() if r.version == 2]
        assert record.author == "agent:app.agents:smith/w1" and "create_tool app.generated:slugify" in record.reason
        assert app.registry.version == 2  # the failed attempt applied nothing
    finally:
        await app.close()

    app = await open_app(tmp_path, text)  # restart on the same store
    try:
        assert app.registry.version == 2
        assert await app.call("app.generated:slugify", {"text": "Back Again"}) == "back-again"
        agents = app.agents
        result = await agents.run("app.agents:undoer", "Use slugify, then undo it.", task_id="u1", timeout=30)
        assert result.stop_reason == "final" and result.answer == "The tool is gone."
        calls = agents.provider_for("app.models:m2").calls
        assert tool_results(calls[1])[-1] == "a-b"
        assert '"version": 3' in tool_results(calls[2])[-1]
        assert "slugify" not in tool_names(calls[3])  # the running agent stops seeing it
        assert "there is no tool named 'slugify'" in tool_results(calls[3])[-1]
        assert app.registry.get("app.generated:slugify") is None
        [rb] = [r for r in await app.registry.history() if r.version == 3]
        assert rb.author == "agent:app.agents:undoer/u1"
        assert [(c["op"], c["id"]) for c in rb.changes] == [("delete", "app.generated:slugify")]
    finally:
        await app.close()


MANAGER = [
    {"tool_calls": [{"name": "create_agent", "arguments": {
        "id": "app.agents:gen_helper", "description": "Greets", "prompt": "You greet.", "model": "app.models:m3",
        "policies": ["app.security:manager"]}}]},
    {"tool_calls": [{"name": "update_entry", "arguments": {"id": "app.agents:boss", "changes": {
        "delegates": [{"id": "app.agents:gen_helper", "name": "ask_helper", "description": "Greets people"}]}}}]},
    {"tool_calls": [{"name": "ask_helper", "arguments": {"task": "Greet Ada."}}]},
    {"text": "The helper says: Hello, Ada!"},
]
TEAM = [
    {"namespace": "app.security", "entries": [{"name": "manager", "kind": "security.policy", "rules": [
        {"effect": "allow", "actions": ["tool.call", "registry.read"], "resources": ["*"]},
        {"effect": "allow", "actions": ["registry.write"], "resources": ["app.agents:*"]}]}]},
    {"namespace": "app.models", "entries": [
        {"name": "m2", "kind": "llm.model", "provider": "scripted", "context_window": 100000, "script": MANAGER},
        {"name": "m3", "kind": "llm.model", "provider": "scripted", "context_window": 100000,
         "script": [{"text": "Hello, Ada!"}]}]},
    {"namespace": "app.agents", "entries": [{**agent("boss", ["app.security:manager"]), "model": "app.models:m2"}]},
]


async def test_an_agent_creates_a_helper_agent_and_delegates_to_it_on_the_next_turn(tmp_path):
    app = await open_app(tmp_path, app_yaml(extra_docs=TEAM))
    try:
        agents = app.agents
        result = await agents.run("app.agents:boss", "Have someone greet Ada.", task_id="b1", timeout=30)
        assert (result.stop_reason, result.answer) == ("final", "The helper says: Hello, Ada!")
        calls = agents.provider_for("app.models:m2").calls
        assert "ask_helper" not in tool_names(calls[1]) and "ask_helper" in tool_names(calls[2])
        assert "Hello, Ada!" in tool_results(calls[3])[-1]
        helper = app.entry("app.agents:gen_helper")
        assert helper.data["policies"] == ["app.security:manager"]
        assert helper.meta["created_by"] == "agent:app.agents:boss/b1"
    finally:
        await app.close()
