"""Delegation, tools registered mid-run, context trimming, bad definitions, missing keys."""

from __future__ import annotations

import json

import pytest

from wippy_agents.agents import ContextWindow, python_tool
from wippy_agents.errors import ContextOverflow, MissingApiKey
from wippy_agents.llm import Message, TokenCounter, ToolCall
from wippy_agents.registry import AppSettings, lint

from .conftest import write_app
from .helpers import app_text, call, until


def svc(app):
    return app.agents


async def test_a_delegate_appears_as_a_tool_and_runs_as_a_child_task(make_app):
    helper = {"name": "helper", "kind": "agent", "model": "app.models:h", "prompt": "You help the boss.",
              "tools": []}
    text = app_text([{"tool_calls": [call("ask_helper", task="say hi")]}, {"text": "helper said: hi!"}],
                    agent={"delegates": [{"id": "app.agents:helper", "name": "ask_helper",
                                          "description": "Ask the helper"}]},
                    extra_agents=[helper])
    text += ("\n---\nnamespace: app.models\nentries:\n  - name: h\n    kind: llm.model\n    provider: scripted\n"
             "    script: [{text: 'hi!'}]\n")
    app = await make_app(text)
    result = await svc(app).run("app.agents:a", "greet", task_id="boss", timeout=30)
    assert result.answer == "helper said: hi!"
    boss_calls = svc(app).provider_for("app.models:m").calls
    assert "ask_helper" in {t.name for t in boss_calls[0].tools}
    assert [m.content for m in boss_calls[1].messages if m.role == "tool"] == ["hi!"]
    helper_call = svc(app).provider_for("app.models:h").calls[0]
    assert helper_call.messages[-1].content == "say hi"
    children = [t for t in await app.store.task_list() if t.parent_id == "boss"]
    assert len(children) == 1 and children[0].target == "app.agents:helper" and children[0].status == "succeeded"


async def test_a_tool_registered_during_the_run_is_usable_on_the_next_turn(make_app):
    script = [{"tool_calls": [call("make_tool")]}, {"tool_calls": [call("triple", n=4)]}, {"text": "12"}]

    @python_tool("test.mk:make_tool", description="registers app.tools:triple", input_schema={"type": "object"})
    async def make_tool(args, ctx):
        cs = ctx.app.registry.changeset(author="test", reason="new tool")
        cs.create({"id": "app.tools:triple", "kind": "function.lua",
                   "meta": {"type": "tool", "description": "triple n"},
                   "source": "return {handler = function(a) return a.n * 3 end}",
                   "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}}})
        return {"version": await ctx.app.registry.apply(cs)}

    app = await make_app(app_text(script, agent={"tools": ["app.tools:*", "test.mk:make_tool"]}))
    result = await svc(app).run("app.agents:a", "x", timeout=30)
    calls = svc(app).provider_for("app.models:m").calls
    assert "triple" not in {t.name for t in calls[0].tools}
    assert "triple" in {t.name for t in calls[1].tools}
    assert [m.content for m in calls[2].messages if m.role == "tool"][-1] == "12"
    assert result.answer == "12"


def test_trimming_a_tiny_window_keeps_each_call_with_its_result():
    counter = TokenCounter("gpt-4o")
    win = ContextWindow(counter, window=200, reserve_output=20)
    win.set_system("You are terse.")
    win.add(Message.user("task: add numbers"))
    for i in range(30):
        c = ToolCall(id=f"c{i}", name="add", arguments={"x": i, "y": i})
        win.add(Message.assistant("", [c]))
        win.add(Message.tool(f"c{i}", f"result number {i} " * 3, name="add"))
        msgs = win.messages()
        assert counter.count_messages(msgs) <= 200 - 20
        assert msgs[0].role == "system" and msgs[0].content == "You are terse."
        assert any(m.role == "user" and m.content == "task: add numbers" for m in msgs)
        called = {c.id for m in msgs if m.role == "assistant" for c in m.tool_calls}
        answered = {m.tool_call_id for m in msgs if m.role == "tool"}
        assert called == answered  # no call without its result, no result without its call
    assert win.dropped > 0
    assert "earlier messages" in win.messages()[1].content


def test_running_totals_match_a_full_recount():
    counter = TokenCounter("gpt-4o")
    win = ContextWindow(counter, window=100000)
    win.set_system("sys")
    win.add(Message.user("hello"))
    for i in range(50):
        win.add(Message.assistant(f"turn {i}"))
    assert win.tokens == TokenCounter("gpt-4o").count_messages(win.messages())


def test_oversized_tool_results_are_truncated_with_a_marker():
    counter = TokenCounter("gpt-4o")
    win = ContextWindow(counter, window=100000, max_tool_result_tokens=50)
    win.add(Message.user("x"))
    win.add(Message.assistant("", [ToolCall(id="c", name="t")]))
    win.add(Message.tool("c", "word " * 5000))
    tool = win.messages()[-1]
    assert counter.count(tool.content) <= 50
    assert "[... truncated by wippy: the result had 5001 tokens" in tool.content


def test_a_system_prompt_larger_than_the_window_is_an_error():
    win = ContextWindow(TokenCounter("gpt-4o"), window=100, reserve_output=10)
    win.set_system("lorem ipsum " * 200)
    with pytest.raises(ContextOverflow, match="the system prompt has .* tokens but the model's window leaves room"):
        win.messages()


async def test_missing_model_prompt_and_tool_are_lint_errors_with_file_and_line(tmp_path):
    path = write_app(tmp_path, """
        namespace: app.agents
        entries:
          - name: broken
            kind: agent
            model: app.models:nope
            prompt: app.prompts:nope
            tools: [app.tools:nope]
        """)
    problems = [str(p) for p in await lint(AppSettings.load(path))]
    for missing in ("model: refers to 'app.models:nope'", "prompt: refers to 'app.prompts:nope'",
                    "tools[0]: refers to 'app.tools:nope'"):
        assert any(missing in p and f"{path}:" in p for p in problems), (missing, problems)
    lines = {p.split(": ")[0] for p in problems}
    assert f"{path}:5" in lines and f"{path}:6" in lines and f"{path}:7" in lines


async def test_a_missing_api_key_is_one_line_naming_the_env_var(make_app, monkeypatch):
    monkeypatch.delenv("WIPPY_TEST_NO_KEY", raising=False)
    text = app_text([{"text": "x"}], model={"provider": "openai", "model": "gpt-4o-mini",
                                          "api_key_env": "WIPPY_TEST_NO_KEY"})
    app = await make_app(text)
    with pytest.raises(MissingApiKey) as info:
        await svc(app).run("app.agents:a", "x", timeout=30)
    assert "WIPPY_TEST_NO_KEY" in str(info.value) and "\n" not in str(info.value)
    assert await app.store.task_list() == []  # refused before a task was created


async def test_a_window_too_small_for_the_system_prompt_fails_the_run_clearly(make_app):
    app = await make_app(app_text([{"text": "x"}], model={"context_window": 40}, prompt="word " * 200))
    with pytest.raises(ContextOverflow, match="the system prompt has .* tokens but the model's window"):
        await svc(app).run("app.agents:a", "x", timeout=30)
    assert svc(app).provider_for("app.models:m").calls == []  # the model was never called


async def test_the_api_key_never_reaches_the_model_or_lua(make_app, monkeypatch):
    monkeypatch.setenv("WIPPY_TEST_SECRET_KEY", "sk-very-secret")
    tools = [{"name": "peek", "kind": "function.lua", "meta": {"type": "tool", "description": "reads the model entry"},
              "modules": ["registry", "json"], "idempotent": True,
              "source": "return {handler = function(a) return json.encode(registry.get('app.models:m')) end}",
              "input_schema": {"type": "object"}}]
    app = await make_app(app_text([{"tool_calls": [call("peek")]}, {"text": "done"}], tools=tools,
                                  model={"api_key_env": "WIPPY_TEST_SECRET_KEY"}))
    await svc(app).run("app.agents:a", "x", timeout=30)
    seen = json.dumps([m.to_dict() for c in svc(app).provider_for("app.models:m").calls for m in c.messages])
    assert "WIPPY_TEST_SECRET_KEY" in seen  # Lua saw the variable's name ...
    assert "sk-very-secret" not in seen  # ... never its value


async def test_cancelling_a_parent_cancels_its_delegate_and_stops_at_once(make_app):
    import asyncio

    entered, never = asyncio.Event(), asyncio.Event()

    @python_tool("test.cascade:block", description="blocks", input_schema={"type": "object"}, idempotent=True)
    async def block(args, ctx):
        entered.set()
        await never.wait()

    helper = {"name": "helper", "kind": "agent", "model": "app.models:h", "prompt": "You help.",
              "tools": ["test.cascade:block"]}
    text = app_text([{"tool_calls": [call("ask_helper", task="block")]}, {"text": "never"}],
                    agent={"delegates": [{"id": "app.agents:helper", "name": "ask_helper"}]}, extra_agents=[helper])
    text += ("\n---\nnamespace: app.models\nentries:\n  - name: h\n    kind: llm.model\n    provider: scripted\n"
             "    script: [{tool_calls: [{name: block, arguments: {}}]}, {text: never}]\n")
    app = await make_app(text)
    await svc(app).start("app.agents:a", "go", task_id="parent")
    await asyncio.wait_for(entered.wait(), 10)
    await app.tasks.cancel("parent", reason="stop everything")
    result = await svc(app).result("parent", timeout=30)
    assert result.stop_reason == "cancelled"
    # the parent's run stops waiting for its child at once and cancels it (the tool never returned)
    child = await until(lambda: _child_of(app, "parent"), lambda t: t.status == "cancelled")
    assert "its parent task 'parent' ended" in child.error["message"]
    # the parent's run ends though its child's tool still blocks
    await until(lambda: _async(app.tasks.running()), lambda running: running == [child.id])
    never.set()  # the child's tool returns; the child stops at its next step (cancellation is cooperative)
    await until(lambda: _async(app.tasks.running()), lambda running: not running)
    assert (await app.tasks.get(child.id)).status == "cancelled"


async def _async(value):
    return value


async def _child_of(app, parent_id):
    return next(t for t in await app.store.task_list() if t.parent_id == parent_id)

