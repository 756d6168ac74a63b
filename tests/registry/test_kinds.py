"""Kinds as plug-ins: published schemas, schema checks, references, agent tool names."""

from __future__ import annotations

import jsonschema
import pytest

from wippy_agents.errors import ValidationError
from wippy_agents.registry import Registry, kinds
from wippy_agents.registry.kinds import KindHandler, RefField

REQUIRED_KINDS = {
    "registry.entry", "function.lua", "library.lua", "process.lua", "workflow.lua", "process.host",
    "process.service", "agent", "prompt", "llm.model", "security.policy",
}


def test_every_required_kind_publishes_a_valid_json_schema():
    assert REQUIRED_KINDS <= set(kinds.names())
    for name in kinds.names():
        schema = kinds.schema(name)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["properties"]["kind"] == {"const": name}
        assert schema["required"][:2] == ["name", "kind"]


def test_unknown_kind_schema_lists_known_kinds():
    with pytest.raises(ValidationError, match="unknown kind 'function.py'; known kinds: agent, "):
        kinds.schema("function.py")


async def _apply(reg: Registry, *specs):
    cs = reg.changeset(author="test")
    for spec in specs:
        cs.create(spec)
    return await reg.apply(cs)


async def test_missing_required_field_is_a_schema_error():
    reg = Registry()
    with pytest.raises(ValidationError) as err:
        await _apply(reg, {"id": "app.tools:x", "kind": "function.lua", "method": "handler"})
    assert str(err.value) == "app.tools:x: function.lua schema: 'source' is a required property"
    assert reg.version == 0 and reg.get("app.tools:x") is None


async def test_a_tool_needs_a_description_and_an_input_schema():
    reg = Registry()
    with pytest.raises(ValidationError) as err:
        await _apply(reg, {"id": "app.tools:x", "kind": "function.lua", "meta": {"type": "tool"}, "source": "return {}"})
    messages = [p["message"] for p in err.value.details["problems"]]
    assert "function.lua schema: 'input_schema' is a required property" in messages
    assert "function.lua schema: meta: 'description' is a required property" in messages


async def test_unknown_kind_is_refused():
    reg = Registry()
    with pytest.raises(ValidationError, match=r"app.x:y: unknown kind 'functon.lua'; known kinds: "):
        await _apply(reg, {"id": "app.x:y", "kind": "functon.lua", "source": "x"})


async def test_reference_to_a_missing_entry_is_refused():
    reg = Registry()
    with pytest.raises(ValidationError) as err:
        await _apply(reg, {"id": "app.agents:a", "kind": "agent", "model": "models:gone", "prompt": "inline text here"})
    assert str(err.value) == "app.agents:a: model: refers to 'models:gone', which does not exist"


async def test_bare_reference_resolves_in_the_same_namespace_and_kinds_must_match():
    reg = Registry()
    await _apply(
        reg,
        {"id": "app.ai:m", "kind": "llm.model", "provider": "scripted", "script": []},
        {"id": "app.ai:p", "kind": "prompt", "text": "hello"},
        {"id": "app.ai:a", "kind": "agent", "model": "m", "prompt": "p"},
    )
    with pytest.raises(ValidationError, match=r"app.ai:b: model: 'app.ai:p' is a prompt, expected llm.model"):
        await _apply(reg, {"id": "app.ai:b", "kind": "agent", "model": "p", "prompt": "p"})


async def test_two_tools_with_one_visible_name_are_an_agent_error():
    reg = Registry()
    tool = {"kind": "function.lua", "source": "return {}", "input_schema": {"type": "object"}}
    with pytest.raises(ValidationError) as err:
        await _apply(
            reg,
            {**tool, "id": "app.tools:weather", "meta": {"type": "tool", "description": "a"}},
            {**tool, "id": "app.more:forecast", "meta": {"type": "tool", "description": "b", "alias": "weather"}},
            {"id": "app.ai:m", "kind": "llm.model", "provider": "scripted", "script": []},
            {"id": "app.ai:a", "kind": "agent", "model": "m", "prompt": "Be brief.", "tools": ["app.tools:*", "app.more:forecast"]},
        )
    assert "two tools are both visible to the model as 'weather': app.tools:weather and app.more:forecast" in str(err.value)


async def test_a_later_tool_that_clashes_through_an_agents_glob_is_refused():
    """The whole-snapshot rule is scoped to what a change touches, yet still sees glob referrers."""
    reg = Registry()
    tool = {"kind": "function.lua", "source": "return {}", "input_schema": {"type": "object"}}
    await _apply(
        reg,
        {**tool, "id": "app.tools:weather", "meta": {"type": "tool", "description": "a"}},
        {"id": "app.ai:m", "kind": "llm.model", "provider": "scripted", "script": []},
        {"id": "app.ai:a", "kind": "agent", "model": "m", "prompt": "Be brief.", "tools": ["app.tools:*", "app.more:*"]},
    )
    with pytest.raises(ValidationError, match="visible to the model as 'weather'"):
        await _apply(reg, {**tool, "id": "app.more:forecast", "meta": {"type": "tool", "description": "b", "alias": "weather"}})
    await _apply(reg, {**tool, "id": "app.other:forecast", "meta": {"type": "tool", "description": "b", "alias": "weather"}})


async def test_delegate_names_share_the_tool_namespace():
    reg = Registry()
    base = [
        {"id": "app.ai:m", "kind": "llm.model", "provider": "scripted", "script": []},
        {"id": "app.ai:coder", "kind": "agent", "model": "m", "prompt": "Write Lua."},
    ]
    await _apply(reg, *base)
    with pytest.raises(ValidationError, match="visible to the model as 'coder'"):
        await _apply(
            reg,
            {"id": "app.tools:coder", "kind": "function.lua", "source": "return {}", "meta": {"type": "tool", "description": "x"}, "input_schema": {}},
            {"id": "app.ai:lead", "kind": "agent", "model": "m", "prompt": "Lead.", "tools": ["app.tools:coder"], "delegates": [{"id": "coder"}]},
        )


async def test_a_registered_kind_is_used_without_touching_the_core():
    class Widget(KindHandler):
        kind = "test.widget"
        schema_file = "registry.entry.json"
        open_fields = True
        refs = (RefField(path="parts[]", kinds=("registry.entry",)),)

    kinds.register(Widget())
    try:
        reg = Registry()
        with pytest.raises(ValidationError, match=r"parts\[0\]: refers to 'app.w:bolt', which does not exist"):
            await _apply(reg, {"id": "app.w:thing", "kind": "test.widget", "parts": ["bolt"]})
        await _apply(reg, {"id": "app.w:bolt", "kind": "registry.entry"}, {"id": "app.w:thing2", "kind": "test.widget", "parts": ["bolt"]})
        assert reg.get("app.w:thing2").kind == "test.widget"
    finally:
        kinds.unregister("test.widget")


_CONDITIONAL = [
    ("function.lua", {"source": "x", "meta": {}}),
    ("function.lua", {"source": "x", "meta": {"type": "tool"}}),
    ("function.lua", {"source": "x", "meta": {"type": "tool", "description": "d"}}),
    ("function.lua", {"source": "x", "meta": {"type": "tool", "description": "d"}, "input_schema": {"type": "object"}}),
    ("function.lua", {"source": "x", "meta": {"type": "other"}}),
    ("function.lua", {"source": "x", "meta": {"type": 5}}),
    ("function.lua", {"source": "x", "meta": []}),
    ("function.lua", {"source": "x", "meta": "tool"}),
    ("llm.model", {"provider": "openai_compatible"}),
    ("llm.model", {"provider": "openai_compatible", "base_url": "http://x", "model": "m"}),
    ("llm.model", {"provider": "openai"}),
    ("llm.model", {"provider": "anthropic", "model": "m"}),
    ("llm.model", {"provider": "scripted"}),
    ("llm.model", {"provider": ["openai"]}),
    ("function.python", {}),
    ("function.python", {"meta": {"type": "tool"}}),
]


@pytest.mark.parametrize(("kind", "fields"), _CONDITIONAL)
def test_the_fast_check_of_conditional_schemas_agrees_with_jsonschema(kind, fields):
    from wippy_agents.registry import kinds

    handler = kinds.get(kind)
    doc = {"name": "x", "kind": kind, **fields}
    doc.setdefault("meta", {})
    try:
        handler.quick_check(doc)
        quick_ok = True
    except Exception:  # noqa: BLE001 - fastjsonschema's refusal
        quick_ok = False
    assert quick_ok == handler.validator.is_valid(doc), doc


def test_if_tests_cover_only_what_they_can_judge():
    from wippy_agents.registry.kinds.base import _if_test

    assert _if_test({"properties": {"a": {"const": 1}}}) is None  # non-string const: left to fastjsonschema
    assert _if_test({"properties": {"a": {"type": "string"}}}) is None
    assert _if_test({"properties": []}) is None
    holds = _if_test({"properties": {"a": {"enum": ["x", "y"]}}, "required": ["a"]})
    assert holds({"a": "x"}) and not holds({"a": "z"}) and not holds({}) and holds([1]) and holds("text")
