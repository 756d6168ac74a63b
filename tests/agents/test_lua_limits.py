"""Lua agents are held to max_turns, budget and loop detection on their llm calls, and their usage counts."""

from __future__ import annotations

import io

from wippy_agents.console.agent_cmd import AgentPrinter


def app(agent_extra: str, script: str, model_extra: str = "") -> str:
    return f"""
namespace: app.security
entries:
  - name: open
    kind: security.policy
    rules: [{{effect: allow, actions: [tool.call, lua.module, registry.read], resources: ["*"]}}]
---
namespace: app.models
entries:
  - name: m
    kind: llm.model
    provider: scripted
    context_window: 100000
    input_price: 1.0
{model_extra}
    script: {script}
---
namespace: app.agents
entries:
  - name: looper
    kind: agent
    model: app.models:m
    policies: [app.security:open]
    modules: [llm]
{agent_extra}
    source: |
      return {{handler = function(input)
        local last = ""
        for i = 1, 6 do
          local r, err = llm.generate(input.prompt .. " #" .. i)
          if not r then return nil, err end
          last = r.text
        end
        return last
      end}}
"""


def svc(a):
    return a.agents


SIX = "[" + ", ".join(f'{{text: "reply {i}", usage: {{input_tokens: 100, output_tokens: 1}}}}' for i in range(1, 7)) + "]"


async def test_max_turns_stops_a_lua_agent_and_its_usage_and_live_calls_count(make_app):
    a = await make_app(app("    max_turns: 2", SIX))
    out, err = io.StringIO(), io.StringIO()
    printer = AgentPrinter(out=out, err=err)
    result = await svc(a).run("app.agents:looper", "go", timeout=30, on_event=printer)
    assert (result.stop_reason, result.turns, result.answer) == ("max_turns", 2, "reply 2")
    assert "max_turns (2)" in result.detail
    assert (result.usage.input_tokens, result.usage.output_tokens) == (200, 2)
    assert len(svc(a).provider_for("app.models:m").calls) == 2
    assert printer.live_calls == 2  # a first run: every call live, none replayed


async def test_a_lua_agent_budget_refuses_the_call_that_could_overshoot(make_app):
    # after 2 calls (202 tokens) the next one's worst case (its prompt + 50 max output) passes 250
    a = await make_app(app("    budget: {max_total_tokens: 250}", SIX, "    max_output_tokens: 50"))
    result = await svc(a).run("app.agents:looper", "go", timeout=30)
    assert result.stop_reason == "budget" and "it was not sent" in result.detail
    assert len(svc(a).provider_for("app.models:m").calls) == 2 and result.usage.total_tokens == 202


async def test_a_lua_agent_cost_budget(make_app):
    a = await make_app(app("    budget: {max_cost_usd: 0.0002}", SIX))  # $0.0001 per call at $1/M input
    result = await svc(a).run("app.agents:looper", "go", timeout=30)
    assert result.stop_reason == "budget" and result.usage.cost_usd <= 0.0002
    assert len(svc(a).provider_for("app.models:m").calls) == 2


async def test_a_lua_agent_repeating_a_tool_call_is_a_loop(make_app):
    same = "[" + ", ".join(['{text: "again", tool_calls: [{name: add, arguments: {x: 1}}]}'] * 6) + "]"
    a = await make_app(app("", same))
    result = await svc(a).run("app.agents:looper", "go", timeout=30)
    assert result.stop_reason == "loop" and "'add' with the same arguments 3 turns in a row" in result.detail
    assert result.turns == 3


async def test_a_failed_model_call_of_a_lua_agent_ends_the_run_unjournaled_and_resume_calls_again(make_app):
    script = ('[{error: {type: ProviderError, message: "the reply stream ended without message_stop"}}, '
              '{text: "a"}, {text: "b"}, {text: "c"}, {text: "d"}, {text: "e"}, {text: "f"}]')
    a = await make_app(app("", script))
    task = await svc(a).start("app.agents:looper", "go", task_id="lua-cut")
    import pytest

    from wippy_agents.errors import ProviderError

    with pytest.raises(ProviderError, match="without message_stop; the call was not recorded, so `wippy tasks "
                                            "resume lua-cut` makes it again"):
        await svc(a).result(task.id, timeout=30)
    assert [s for s in await a.store.journal_load("lua-cut") if s.name == "llm"] == []
    await a.tasks.resume("lua-cut")
    result = await svc(a).result("lua-cut", timeout=30)
    assert (result.answer, result.stop_reason, result.turns) == ("f", "final", 6)


async def test_llm_stream_calls_of_a_lua_agent_count_against_max_turns(make_app):
    text = app("    max_turns: 1", SIX).replace(
        'local r, err = llm.generate(input.prompt .. " #" .. i)',
        'local next_chunk, r = llm.stream(input.prompt .. " #" .. i)')
    a = await make_app(text)
    result = await svc(a).run("app.agents:looper", "go", timeout=30)
    assert (result.stop_reason, result.turns, result.answer) == ("max_turns", 1, "reply 1")
    assert result.usage.input_tokens == 100
