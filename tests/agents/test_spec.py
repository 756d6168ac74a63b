"""The agent spec, prompt rendering and the toolset an agent sees."""

from __future__ import annotations

import pytest

from wippy_agents.agents import AgentSpec, build_toolset, render_prompt
from wippy_agents.errors import PromptError
from wippy_agents.llm import TokenCounter
from wippy_agents.registry import Entry, EntryId, Snapshot


def entry(id_: str, kind: str, meta=None, **data) -> Entry:
    return Entry(id=EntryId(id_), kind=kind, meta=meta or {}, data=data)


def test_render_fills_plain_and_nested_variables():
    assert render_prompt("Hi {{ name }}, from {{user.city}}", {"name": "Ada", "user": {"city": "Lisbon"}}) == \
        "Hi Ada, from Lisbon"


def test_every_unfilled_variable_is_named_once():
    with pytest.raises(PromptError) as info:
        render_prompt("{{a}} {{b}} {{a}} {{c.d}}", {"c": {}}, where="app.prompts:p (p.yaml:3)")
    assert "app.prompts:p (p.yaml:3): prompt variable(s) a, b, c.d have no value" in str(info.value)
    assert info.value.details["missing"] == ["a", "b", "c.d"]


def test_spec_resolves_bare_names_and_reads_limits():
    spec = AgentSpec.from_entry(entry(
        "app.agents:a", "agent", model="m", prompt="app.prompts:p", tools=["t", "app.tools:*"],
        delegates=[{"id": "coder"}], max_turns=5, budget={"max_total_tokens": 10, "max_cost_usd": 0.5}))
    assert spec.model == "app.agents:m" and spec.prompt == "app.prompts:p" and spec.inline_prompt is None
    assert spec.tools == ("app.agents:t", "app.tools:*")
    assert spec.delegates[0].id == "app.agents:coder" and spec.delegates[0].name == "coder"
    assert (spec.max_turns, spec.budget.max_total_tokens, spec.budget.max_cost_usd) == (5, 10, 0.5)


def test_a_prompt_with_spaces_is_inline_text():
    spec = AgentSpec.from_entry(entry("app.agents:a", "agent", model="m", prompt="You help: be brief"))
    assert spec.prompt is None and spec.inline_prompt == "You help: be brief"


def test_toolset_takes_tools_by_glob_and_alias_and_adds_delegates():
    snap = Snapshot(3, {e.id: e for e in [
        entry("app.tools:add", "function.lua", {"type": "tool", "description": "add"}, source="x",
              input_schema={"type": "object"}),
        entry("app.tools:helper", "function.lua", {}, source="x"),  # not a tool: not offered
        entry("app.tools:mul", "function.lua", {"type": "tool", "description": "mul", "alias": "times"}, source="x",
              input_schema={"type": "object"}),
    ]})
    spec = AgentSpec.from_entry(entry("app.agents:a", "agent", model="m", prompt="p x",
                                      tools=["app.tools:*"], delegates=[{"id": "b", "name": "ask_b"}]))
    toolset = build_toolset(snap, spec, TokenCounter("gpt-4o"))
    assert toolset.names() == ["add", "times", "ask_b"]
    assert str(toolset.entries["times"].id) == "app.tools:mul" and toolset.delegates["ask_b"].id == "app.agents:b"
    assert toolset.version == 3 and toolset.tokens > 0
