"""The tool interface: Python tools, the call context, and ``dispatch_tool``.

A tool is a registry entry with ``meta.type: tool``, a description and an
``input_schema``: a ``function.lua`` entry (run in a fresh Lua sandbox) or a
``function.python`` entry (a coroutine shipped with the package, declared with
``python_tool``; builtin only, never written by files or agents).

>>> @python_tool("app.demo:echo", description="Echo the text",
...              input_schema={"type": "object", "properties": {"text": {"type": "string"}}})
... async def echo(args, ctx):
...     return args["text"]
>>> [str(e.id) for e in builtin_entries() if str(e.id) == "app.demo:echo"]
['app.demo:echo']

``dispatch_tool`` validates the arguments (a precise message naming the field,
what was expected and what came), asks the security layer (``tool.call``) when
one is installed, runs the tool and turns every failure into ``ToolError``,
whose message is meant for the model.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping

import jsonschema

from ..errors import LuaError, PermissionDenied, ToolError, ValidationError, WippyError
from ..registry import Entry, EntryId, kinds

__all__ = [
    "PythonTool",
    "ToolCallContext",
    "ToolFn",
    "BUILTIN_TOOL_MODULES",
    "ToolRunner",
    "register_tool_runner",
    "tool_runner",
    "python_tool",
    "python_tools",
    "builtin_entries",
    "dispatch_tool",
    "validate_arguments",
]

if TYPE_CHECKING:
    from .layers import NodeLayers

log = logging.getLogger(__name__)


ToolRunner = Callable[[Any, Entry, Any, "ToolCallContext"], Awaitable[Any]]

# Tools of kinds whose ``call_mode`` another layer runs (``mcp``): mode -> ``runner(layers, entry, args, ctx)``.
_RUNNERS: dict[str, ToolRunner] = {}


def register_tool_runner(call_mode: str, runner: ToolRunner) -> None:
    """Run tools of kinds with this ``call_mode`` by ``await runner(layers, entry, args, ctx)``.

    The composition root registers the MCP layer's runner; ``dispatch_tool``
    validates the arguments and checks ``tool.call`` before calling it. The
    runner returns JSON-like data or raises ``ToolError``.
    """
    _RUNNERS[call_mode] = runner


def tool_runner(call_mode: str | None) -> ToolRunner | None:
    """The runner registered for ``call_mode`` (None for Lua and Python tools, or none registered)."""
    return _RUNNERS.get(call_mode) if call_mode else None


# Modules that define builtin tools with @python_tool; imported by builtin_entries().
# A module not (yet) present in the package is skipped; one that fails to import raises.
BUILTIN_TOOL_MODULES: list[str] = ["wippy_agents.agents.selfmod"]


@dataclass(frozen=True, kw_only=True)
class ToolCallContext:
    """What a tool knows about the call: the app, the security actor of the agent run,
    the durable task, the agent entry and the model's call id."""

    app: "NodeLayers"
    actor: Any = None
    task_id: str | None = None
    agent_id: str | None = None
    call_id: str | None = None


ToolFn = Callable[[dict, ToolCallContext], Awaitable[Any]]


@dataclass(frozen=True, kw_only=True)
class PythonTool:
    """A Python tool: its registry entry and its coroutine function."""

    id: str
    fn: ToolFn
    description: str
    input_schema: Mapping[str, Any]
    idempotent: bool = False
    meta: Mapping[str, Any] = field(default_factory=dict)

    def entry(self) -> Entry:
        meta = {"type": "tool", "description": self.description, **self.meta}
        data = {
            "input_schema": dict(self.input_schema),
            "idempotent": self.idempotent,
            "python": f"{self.fn.__module__}:{self.fn.__qualname__}",
        }
        return Entry(id=EntryId(self.id), kind="function.python", meta=meta, data=data, origin="builtin")


_TOOLS: dict[str, PythonTool] = {}


def python_tool(
    entry_id: str,
    *,
    description: str,
    input_schema: Mapping[str, Any],
    idempotent: bool = False,
    alias: str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Callable[[ToolFn], ToolFn]:
    """Declare ``async def fn(args, ctx)`` as the builtin tool ``entry_id`` (kind ``function.python``).

    Raises ``ValidationError`` at import time for a bad id, a schema that is not
    a valid JSON Schema, a non-coroutine function or an id declared twice by
    different functions.
    """
    EntryId(entry_id)  # raises ValidationError for a malformed id
    try:
        jsonschema.validators.validator_for(input_schema).check_schema(input_schema)
    except jsonschema.SchemaError as exc:
        raise ValidationError(f"python_tool {entry_id!r}: input_schema is not a valid JSON Schema: {exc.message}") from None

    def register(fn: ToolFn) -> ToolFn:
        if not inspect.iscoroutinefunction(fn):
            raise ValidationError(f"python_tool {entry_id!r}: {fn.__qualname__} must be an async function (args, ctx)")
        extra = dict(meta or {})
        if alias:
            extra["alias"] = alias
        tool = PythonTool(id=entry_id, fn=fn, description=description, input_schema=dict(input_schema),
                          idempotent=idempotent, meta=extra)
        old = _TOOLS.get(entry_id)
        if old is not None and (old.fn.__module__, old.fn.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValidationError(f"python_tool {entry_id!r} is declared twice ({old.fn.__qualname__}, {fn.__qualname__})")
        _TOOLS[entry_id] = tool  # re-declaring the same function (module reload) replaces it
        return fn

    return register


def python_tools() -> dict[str, PythonTool]:
    """Every declared Python tool by id (a copy)."""
    return dict(_TOOLS)


def builtin_entries() -> list[Entry]:
    """The builtin registry entries: every ``python_tool`` (after importing ``BUILTIN_TOOL_MODULES``)."""
    for name in BUILTIN_TOOL_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    return [tool.entry() for _, tool in sorted(_TOOLS.items())]


# -- validation ------------------------------------------------------------------

_VALIDATORS: dict[int, tuple[Any, Any]] = {}


def _validator(schema: Mapping[str, Any]) -> Any:
    # Keyed by identity: entries are immutable, so one schema object is one validator
    # (the schema is kept in the value so its id cannot be reused while cached).
    hit = _VALIDATORS.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    cls = jsonschema.validators.validator_for(schema)
    validator = cls(schema)
    if len(_VALIDATORS) > 4096:
        _VALIDATORS.clear()
    _VALIDATORS[id(schema)] = (schema, validator)
    return validator


# Most tool schemas are a flat object of typed fields; those are checked by a small
# compiled function (a few microseconds) and only a failing call pays for jsonschema,
# which then writes the messages. Anything richer always goes through jsonschema.
_PY_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}
_NOTES = frozenset({"description", "title", "default", "examples", "$schema", "$id"})
_FAST: dict[int, tuple[Any, Callable[[Any], bool] | None]] = {}


def _fast_check(schema: Mapping[str, Any]) -> Callable[[Any], bool] | None:
    """A quick validity test for a flat object schema, or None when the schema is richer."""
    hit = _FAST.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    check = _compile_flat(schema)
    if len(_FAST) > 4096:
        _FAST.clear()
    _FAST[id(schema)] = (schema, check)
    return check


def _compile_flat(schema: Mapping[str, Any]) -> Callable[[Any], bool] | None:
    if schema.get("type") != "object" or set(schema) - _NOTES - {"type", "properties", "required",
                                                                 "additionalProperties"}:
        return None
    props = schema.get("properties") or {}
    required = schema.get("required") or []
    extra = schema.get("additionalProperties", True)
    if not isinstance(props, dict) or not isinstance(required, list) or not isinstance(extra, bool):
        return None
    fields: dict[str, Callable[[Any], bool]] = {}
    for key, sub in props.items():
        if not isinstance(sub, dict) or set(sub) - _NOTES - {"type"} or sub.get("type") not in _PY_TYPES:
            return None
        fields[key] = _PY_TYPES[sub["type"]]
    need = tuple(required)

    def check(args: Any) -> bool:
        if not isinstance(args, dict) or any(k not in args for k in need):
            return False
        for key, value in args.items():
            test = fields.get(key)
            if test is None:
                if not extra:
                    return False
            elif not test(value):
                return False
        return True

    return check


def validate_arguments(name: str, schema: Mapping[str, Any] | None, args: Any) -> None:
    """Check ``args`` against the tool's JSON Schema; raises ``ToolError`` listing each problem
    as ``field: expected X, got Y`` so the model can fix the call."""
    if not schema:
        return
    fast = _fast_check(schema)
    if fast is not None and fast(args):
        return
    try:
        errors = sorted(_validator(schema).iter_errors(args), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    except jsonschema.SchemaError as exc:
        raise ToolError(f"tool {name!r} has an invalid input_schema ({exc.message}); it cannot be called") from None
    if not errors:
        return
    lines = [_describe(err) for err in errors[:8]]
    more = f" (and {len(errors) - 8} more)" if len(errors) > 8 else ""
    raise ToolError(
        f"invalid arguments for tool {name!r}: " + "; ".join(lines) + more + ". Fix the arguments and call again.",
        tool=name, problems=lines,
    )


def _describe(err: jsonschema.ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p))
                   for i, p in enumerate(err.absolute_path))
    where = f"argument {path!r}" if path else "arguments"
    got = _show(err.instance)
    v, want = err.validator, err.validator_value
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        field_path = f"{path}.{missing}" if path else missing
        return f"argument {field_path!r} is required but missing"
    if v == "type":
        return f"{where}: expected {_types(want)}, got {got} ({_json_type(err.instance)})"
    if v == "enum":
        return f"{where}: expected one of {want!r}, got {got}"
    if v == "const":
        return f"{where}: expected {want!r}, got {got}"
    if v == "additionalProperties":
        return f"{where}: {err.message} (allowed: {', '.join(sorted(err.schema.get('properties', {})))})"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
             "minItems", "maxItems", "pattern", "format", "multipleOf"):
        return f"{where}: expected {v} {want!r}, got {got}"
    return f"{where}: {err.message}"


def _types(want: Any) -> str:
    return " or ".join(want) if isinstance(want, list) else str(want)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- dispatch ----------------------------------------------------------------------

async def dispatch_tool(app: "NodeLayers", entry: Entry, args: Any, ctx: ToolCallContext) -> Any:
    """Validate ``args``, check ``tool.call`` with the security layer, run the tool.

    Returns the tool's result (JSON-like data). Every failure the model can act
    on — bad arguments, a refusal, a raised error, a Lua limit — raises
    ``ToolError`` with a message for the model. Cancellation propagates.
    """
    tool_id = str(entry.id)
    mode = kinds.call_mode(entry.kind)
    if not kinds.is_tool_kind(entry.kind):
        raise ToolError(f"{tool_id!r} is a {entry.kind} entry, not a tool", tool=tool_id)
    validate_arguments(tool_id, entry.data.get("input_schema"), args)
    try:
        await app.security.enforce(ctx.actor, "tool.call", tool_id, details={"args": args, "task_id": ctx.task_id})
    except PermissionDenied as exc:
        raise ToolError(f"calling tool {tool_id!r} is not allowed: {exc}", tool=tool_id, denied=True) from None
    try:
        if mode == "python":
            tool = _TOOLS.get(tool_id)
            if tool is None:
                raise ToolError(f"tool {tool_id!r} has no Python implementation loaded", tool=tool_id)
            return await tool.fn(args, ctx)
        runner = tool_runner(mode)
        if runner is not None:
            return await runner(app, entry, args, ctx)
        if mode != "lua":
            raise ToolError(f"tool {tool_id!r} is a {entry.kind} and this node cannot run it", tool=tool_id)
        return await app.lua.call_function(entry, args, actor=ctx.actor)
    except ToolError:
        raise
    except LuaError as exc:
        raise ToolError(f"tool {tool_id!r} failed: {_strip(exc, tool_id)}", tool=tool_id) from None
    except WippyError as exc:
        raise ToolError(f"tool {tool_id!r} failed: {exc}", tool=tool_id) from None
    except Exception as exc:  # noqa: BLE001 - a tool's own bug goes back to the model, the task continues
        log.warning("tool %s raised %s: %s", tool_id, type(exc).__name__, exc)
        raise ToolError(f"tool {tool_id!r} raised {type(exc).__name__}: {exc}", tool=tool_id) from None


def _strip(exc: Exception, tool_id: str) -> str:
    text = str(exc)
    prefix = f"{tool_id}: "
    return text[len(prefix):] if text.startswith(prefix) else text
