"""The tool interface: python_tool entries, argument validation, dispatch, security hook."""

from __future__ import annotations

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wippy_agents.agents import ToolCallContext, ToolError, builtin_entries, dispatch_tool, python_tool
from wippy_agents.agents.tools import _fast_check
from wippy_agents.errors import PermissionDenied, ValidationError

SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "n": {"type": "integer", "minimum": 1}},
    "required": ["text"],
    "additionalProperties": False,
}


@python_tool("test.tools:shout", description="Upper-case a text", input_schema=SCHEMA, idempotent=True)
async def shout(args, ctx):
    return {"text": args["text"].upper(), "agent": ctx.agent_id}


@python_tool("test.tools:broken", description="Always raises", input_schema={"type": "object"})
async def broken(args, ctx):
    raise KeyError("oops")


APP = """
namespace: app.tools
entries:
  - name: add
    kind: function.lua
    meta: {type: tool, description: "Add two numbers"}
    source: |
      return {handler = function(a) return a.x + a.y end}
    input_schema: {type: object, properties: {x: {type: number}, y: {type: number}}, required: [x, y]}
  - name: spin
    kind: function.lua
    meta: {type: tool, description: "Never ends"}
    limits: {max_instructions: 100000}
    source: |
      return {handler = function(a) while true do end end}
    input_schema: {type: object}
"""


def test_python_tool_becomes_a_builtin_function_python_entry():
    entry = next(e for e in builtin_entries() if str(e.id) == "test.tools:shout")
    assert entry.kind == "function.python"
    assert entry.origin == "builtin"
    assert entry.meta == {"type": "tool", "description": "Upper-case a text"}
    assert entry.data["input_schema"] == SCHEMA and entry.data["idempotent"] is True


def test_python_tool_rejects_sync_functions_and_bad_schemas():
    with pytest.raises(ValidationError, match="async"):
        python_tool("test.tools:sync", description="x", input_schema={"type": "object"})(lambda a, c: 1)
    with pytest.raises(ValidationError, match="not a valid JSON Schema"):
        python_tool("test.tools:bad", description="x", input_schema={"type": "nonsense"})


async def test_builtin_tools_are_in_the_app_registry_and_cannot_be_created_at_run_time(make_app):
    app = await make_app(APP)
    assert app.registry.get("test.tools:shout").kind == "function.python"
    cs = app.registry.changeset(author="test", reason="sneak python in")
    cs.create({"id": "app.tools:evil", "kind": "function.python", "meta": {"type": "tool", "description": "x"},
               "input_schema": {"type": "object"}})
    with pytest.raises(ValidationError, match="cannot be written in files or created at run time"):
        await app.registry.apply(cs)


async def test_dispatch_runs_python_and_lua_tools(make_app):
    app = await make_app(APP)
    ctx = ToolCallContext(app=app, agent_id="app.agents:a", call_id="c1")
    assert await dispatch_tool(app, app.entry("test.tools:shout"), {"text": "hi"}, ctx) == {"text": "HI", "agent": "app.agents:a"}
    assert await dispatch_tool(app, app.entry("app.tools:add"), {"x": 2, "y": 3}, ctx) == 5


async def test_invalid_arguments_name_the_field_what_was_expected_and_what_came(make_app):
    app = await make_app(APP)
    ctx = ToolCallContext(app=app)
    with pytest.raises(ToolError) as info:
        await dispatch_tool(app, app.entry("test.tools:shout"), {"n": 0, "extra": 1}, ctx)
    msg = str(info.value)
    assert "argument 'text' is required but missing" in msg
    assert "argument 'n': expected minimum 1, got 0" in msg
    assert "'extra' was unexpected" in msg
    with pytest.raises(ToolError, match=r"argument 'x': expected number, got 'two' \(string\)"):
        await dispatch_tool(app, app.entry("app.tools:add"), {"x": "two", "y": 1}, ctx)


async def test_tool_failures_become_tool_errors_for_the_model(make_app):
    app = await make_app(APP)
    ctx = ToolCallContext(app=app)
    with pytest.raises(ToolError, match="raised KeyError"):
        await dispatch_tool(app, app.entry("test.tools:broken"), {}, ctx)
    with pytest.raises(ToolError, match="app.tools:spin.*failed.*instruction"):
        await dispatch_tool(app, app.entry("app.tools:spin"), {}, ctx)


async def test_security_extension_is_asked_for_tool_call(make_app):
    app = await make_app(APP)
    asked = []

    class Refuse:
        async def enforce(self, actor, action, resource, details=None):
            asked.append((actor, action, resource))
            raise PermissionDenied(f"{actor!r} may not {action} {resource!r}")

    app.security = Refuse()
    with pytest.raises(ToolError, match="not allowed"):
        await dispatch_tool(app, app.entry("app.tools:add"), {"x": 1, "y": 1}, ToolCallContext(app=app, actor="agent:a"))
    assert asked == [("agent:a", "tool.call", "app.tools:add")]


FLAT = {"type": "object", "properties": {"s": {"type": "string"}, "i": {"type": "integer"}, "n": {"type": "number"},
                                         "b": {"type": "boolean", "description": "flag"}},
        "required": ["s"], "additionalProperties": False}
VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=3),
                   st.lists(st.integers(), max_size=2))


@settings(deadline=None, max_examples=300)
@given(st.dictionaries(st.sampled_from(["s", "i", "n", "b", "x"]), VALUES, max_size=5))
def test_the_fast_argument_check_agrees_with_jsonschema(args):
    assert _fast_check(FLAT)(args) == jsonschema.Draft202012Validator(FLAT).is_valid(args)
