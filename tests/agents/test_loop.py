"""The agent turn loop on a scripted model: tools, errors fed back, parallel calls, stop reasons."""

from __future__ import annotations

import asyncio
import json

import pytest

from wippy_agents.agents import AgentResult
from wippy_agents.errors import PromptError

from .helpers import app_text, call


def svc(app):
    return app.agents


def tool_messages(scripted_call):
    return [m for m in scripted_call.messages if m.role == "tool"]


async def test_a_tool_call_then_a_final_answer(make_app):
    app = await make_app(app_text([{"tool_calls": [call("add", x=2, y=3)]}, {"text": "It is 5."}]))
    result = await svc(app).run("app.agents:a", "what is 2+3?", timeout=30)
    assert (result.answer, result.stop_reason, result.turns) == ("It is 5.", "final", 2)
    model = svc(app).provider_for("app.models:m")
    model.assert_complete()
    second = model.calls[1]
    assert second.messages[0].role == "system" and second.messages[0].content == "You are Tester. Use tools."
    assert [json.loads(m.content) for m in tool_messages(second)] == [{"sum": 5}]
    assert {t.name for t in second.tools} == {"add", "echo"}


async def test_invalid_arguments_are_explained_and_corrected_on_the_next_turn(make_app):
    script = [{"tool_calls": [call("add", x="two", y=3)]},
              {"tool_calls": [call("add", x=2, y=3)]},
              {"text": "5"}]
    app = await make_app(app_text(script))
    result = await svc(app).run("app.agents:a", "2+3", timeout=30)
    assert result.answer == "5" and result.stop_reason == "final"
    calls = svc(app).provider_for("app.models:m").calls
    error = tool_messages(calls[1])[0].content
    assert error.startswith("ERROR: invalid arguments for tool 'app.tools:add'")
    assert "argument 'x': expected number, got 'two' (string)" in error
    assert json.loads(tool_messages(calls[2])[-1].content) == {"sum": 5}


async def test_parallel_calls_run_together_and_results_keep_the_model_order(make_app):
    script = [{"tool_calls": [call("echo", text="one"), call("add", x=1, y=1), call("echo", text="three")]},
              {"text": "done"}]
    app = await make_app(app_text(script))
    task = await svc(app).start("app.agents:a", "go", task_id="par-1")
    result = await svc(app).result(task.id, timeout=30)
    assert result.answer == "done"
    results = [m.content for m in tool_messages(svc(app).provider_for("app.models:m").calls[1])]
    assert results == ["one", '{"sum": 2}', "three"]
    steps = [s.name for s in await app.store.journal_load("par-1")]
    assert steps == ["model", "tool:echo", "tool:add", "tool:echo", "model"]


async def test_parallel_python_tools_overlap_in_time(make_app):
    from wippy_agents.agents import python_tool

    started, release = [], asyncio.Event()

    @python_tool("test.par:wait", description="wait for the gate", input_schema={"type": "object"}, idempotent=True)
    async def wait(args, ctx):
        started.append(args.get("n"))
        if len(started) == 2:
            release.set()
        await asyncio.wait_for(release.wait(), 10)  # both must be running at once to get here
        return args.get("n")

    script = [{"tool_calls": [call("wait", n=1), call("wait", n=2)]}, {"text": "ok"}]
    app = await make_app(app_text(script, agent={"tools": ["app.tools:*", "test.par:wait"]}))
    result = await svc(app).run("app.agents:a", "go", timeout=30)
    assert result.answer == "ok" and sorted(started) == [1, 2]


@pytest.mark.parametrize("reply, expect", [
    ({"tool_calls": [call("nope", a=1)]}, "ERROR: there is no tool named 'nope'; the tools you can call are: add, echo"),
    ({"tool_calls": [{"name": "add", "arguments": "{x: 1"}]}, "ERROR: arguments of tool 'add' are not valid JSON"),
    ({"tool_calls": [{"name": "add", "arguments": "[1, 2]"}]}, "ERROR: arguments of tool 'add' must be a JSON object"),
])
async def test_bad_calls_go_back_to_the_model_and_the_run_continues(make_app, reply, expect):
    app = await make_app(app_text([reply, {"text": "sorry"}]))
    result = await svc(app).run("app.agents:a", "x", timeout=30)
    assert result.stop_reason == "final" and result.answer == "sorry"
    assert tool_messages(svc(app).provider_for("app.models:m").calls[1])[0].content.startswith(expect)


async def test_a_tool_that_raises_or_exceeds_its_limits_reports_to_the_model(make_app):
    tools = [
        {"name": "boom", "kind": "function.lua", "meta": {"type": "tool", "description": "fails"},
         "source": "return {handler = function(a) error('disk on fire') end}", "input_schema": {"type": "object"}},
        {"name": "spin", "kind": "function.lua", "meta": {"type": "tool", "description": "loops"},
         "limits": {"max_instructions": 100000},
         "source": "return {handler = function(a) while true do end end}", "input_schema": {"type": "object"}},
    ]
    script = [{"tool_calls": [call("boom")]}, {"tool_calls": [call("spin")]}, {"text": "gave up"}]
    app = await make_app(app_text(script, tools=tools))
    result = await svc(app).run("app.agents:a", "x", timeout=30)
    assert result.answer == "gave up"
    calls = svc(app).provider_for("app.models:m").calls
    assert "disk on fire" in tool_messages(calls[1])[0].content
    spin = tool_messages(calls[2])[1].content
    assert spin.startswith("ERROR: tool 'app.tools:spin' failed") and "instruction" in spin


async def test_text_where_a_tool_call_is_required_is_sent_back(make_app):
    script = [{"text": "I think 5"}, {"tool_calls": [call("final_answer", answer="5")]}]
    app = await make_app(app_text(script, agent={"tool_choice": "required"}))
    result = await svc(app).run("app.agents:a", "2+3", timeout=30)
    assert (result.answer, result.stop_reason) == ("5", "final")
    nudge = svc(app).provider_for("app.models:m").calls[1].messages[-1]
    assert nudge.role == "user" and "A tool call is required" in nudge.content


async def test_stop_reason_max_turns(make_app):
    script = [{"tool_calls": [call("add", x=i, y=0)]} for i in range(3)]
    app = await make_app(app_text(script, agent={"max_turns": 3}))
    result = await svc(app).run("app.agents:a", "x", timeout=30)
    assert result.stop_reason == "max_turns" and result.turns == 3
    assert "max_turns (3)" in result.detail


async def test_stop_reason_budget(make_app):
    script = [{"tool_calls": [call("add", x=1, y=1)], "usage": {"input_tokens": 600, "output_tokens": 10}},
              {"text": "never reached"}]
    app = await make_app(app_text(script, agent={"budget": {"max_total_tokens": 500}}))
    result = await svc(app).run("app.agents:a", "x", timeout=30)
    assert result.stop_reason == "budget" and "610 tokens, over the budget of 500" in result.detail
    assert len(svc(app).provider_for("app.models:m").calls) == 1


async def test_stop_reason_cost_budget(make_app):
    script = [{"tool_calls": [call("add", x=1, y=1)], "usage": {"input_tokens": 1000000, "output_tokens": 0}},
              {"text": "never reached"}]
    app = await make_app(app_text(script, agent={"budget": {"max_cost_usd": 0.5}}, model={"input_price": 1.0}))
    result = await svc(app).run("app.agents:a", "x", timeout=30)
    assert result.stop_reason == "budget" and "$1.0000, over the budget of $0.5000" in result.detail


async def test_stop_reason_loop_on_the_third_identical_call(make_app):
    script = [{"tool_calls": [call("add", x=1, y=1)]}] * 3 + [{"text": "never"}]
    app = await make_app(app_text(script))
    result = await svc(app).run("app.agents:a", "x", timeout=30)
    assert result.stop_reason == "loop" and "'add' with the same arguments 3 turns in a row" in result.detail
    assert [s.name for s in await app.store.journal_load(result.task_id)].count("tool:add") == 2


async def test_stop_reason_cancelled(make_app):
    from wippy_agents.agents import python_tool

    entered, never = asyncio.Event(), asyncio.Event()

    @python_tool("test.cancel:block", description="blocks", input_schema={"type": "object"}, idempotent=True)
    async def block(args, ctx):
        entered.set()
        await never.wait()

    script = [{"tool_calls": [call("block")]}, {"text": "never"}]
    app = await make_app(app_text(script, agent={"tools": ["test.cancel:block"]}))
    task = await svc(app).start("app.agents:a", "x", task_id="cancel-me")
    await asyncio.wait_for(entered.wait(), 10)
    await app.tasks.cancel(task.id, reason="the user pressed stop")
    never.set()
    result = await svc(app).result(task.id, timeout=30)
    assert result.stop_reason == "cancelled" and "the user pressed stop" in result.detail


async def test_unfilled_prompt_variable_fails_the_run_with_a_clear_error(make_app):
    app = await make_app(app_text([{"text": "x"}], prompt="Hello {{who}} and {{name}}"))
    with pytest.raises(PromptError, match=r"app.prompts:p .*variable\(s\) who have no value"):
        await svc(app).run("app.agents:a", "x", timeout=30)


async def test_result_is_stored_as_the_task_result(make_app):
    app = await make_app(app_text([{"text": "hi"}]))
    result = await svc(app).run("app.agents:a", "x", task_id="stored", timeout=30)
    task = await app.tasks.get("stored")
    assert task.status == "succeeded" and AgentResult.from_dict(task.result) == result


async def test_a_tool_result_that_is_not_json_is_an_error_for_the_model(make_app):
    from wippy_agents.agents import python_tool

    @python_tool("test.nojson:bad", description="returns a set", input_schema={"type": "object"}, idempotent=True)
    async def bad(args, ctx):
        return {"items": {1, 2}}

    app = await make_app(app_text([{"tool_calls": [call("bad")]}, {"text": "ok"}],
                                  agent={"tools": ["test.nojson:bad"]}))
    result = await svc(app).run("app.agents:a", "x", timeout=30)
    assert result.answer == "ok"
    error = tool_messages(svc(app).provider_for("app.models:m").calls[1])[0].content
    assert error == "ERROR: tool 'bad' returned data that is not JSON: a set is not JSON data"


async def test_a_task_id_of_another_agent_is_refused(make_app):
    app = await make_app(app_text([{"text": "one"}], extra_agents=[
        {"name": "b", "kind": "agent", "model": "app.models:m", "prompt": "You are b."}]))
    await svc(app).run("app.agents:a", "x", task_id="shared", timeout=30)
    from wippy_agents.errors import UsageError

    with pytest.raises(UsageError, match="task 'shared' runs 'app.agents:a' \\(kind agent\\), not agent 'app.agents:b'"):
        await svc(app).run("app.agents:b", "x", task_id="shared", timeout=30)


async def test_model_steps_record_tokens_and_cost_in_the_journal(make_app):
    script = [{"tool_calls": [call("add", x=1, y=1)], "usage": {"input_tokens": 100, "output_tokens": 20}},
              {"text": "2", "usage": {"input_tokens": 130, "output_tokens": 1}}]
    app = await make_app(app_text(script, model={"input_price": 1.0, "output_price": 2.0}))
    result = await svc(app).run("app.agents:a", "1+1", task_id="metered", timeout=30)
    models = [s for s in await app.store.journal_load("metered") if s.name == "model"]
    assert [s.tokens for s in models] == [120, 131]
    assert sum(s.cost_usd for s in models) == pytest.approx(result.usage.cost_usd) == pytest.approx(272e-6)
