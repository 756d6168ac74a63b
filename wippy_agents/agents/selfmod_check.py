"""Checks a proposed tool before it goes live (``create_tool`` / ``update_tool``).

In order, each failing with a ``ToolError`` the model can act on: the id
(well formed, not in a reserved namespace), the description, the input
schema (a valid JSON Schema of an object), the modules (each allowed by the
caller's policies), the Lua (compiles in the sandbox), then every example
run in a fresh sandbox — within example limits and without side effects —
whose result must equal the expected output.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

import jsonschema

from ..errors import EntryNotFound, LuaCompileError, LuaError, LuaLimitExceeded, PermissionDenied, ToolError, WippyError
from ..lua import KNOWN_MODULES, compile_check
from ..registry import EntryId
from ..security import Actor

__all__ = ["EXAMPLE_LIMITS", "SIDE_EFFECTS", "check_id", "check_schema", "check_modules", "check_source",
           "run_examples", "same"]

# Examples are small: a runaway example fails fast instead of holding the turn for 30 s.
EXAMPLE_LIMITS = {"instructions": 10**7, "timeout": 5.0}
# Actions refused while examples run: validating a tool must not change the world.
SIDE_EFFECTS = ("registry.write", "process.spawn", "process.send", "http.request", "agent.run", "llm.call")
RESERVED = ("wippy",)


def check_id(raw: Any, *, what: str = "id") -> str:
    """A full ``namespace:name`` outside the reserved namespaces."""
    if not isinstance(raw, str) or ":" not in raw:
        raise ToolError(f"{what} must be a full entry id 'namespace:name' (e.g. 'app.generated:slugify'), got {raw!r}")
    try:
        eid = EntryId.parse(raw)
    except WippyError as exc:
        raise ToolError(f"{what} {raw!r} is not a valid entry id: {exc}") from None
    ns = eid.namespace
    if any(ns == r or ns.startswith(r + ".") for r in RESERVED):
        raise ToolError(f"{what} {raw!r} is in the reserved namespace {ns!r} (built-in entries only); "
                        "choose another namespace, e.g. 'app.generated'")
    return str(eid)


def check_schema(schema: Any) -> dict:
    """A valid JSON Schema (meta-validated) describing an object (tool arguments are one object)."""
    if not isinstance(schema, Mapping):
        raise ToolError(f"input_schema must be a JSON Schema object, got {type(schema).__name__}")
    schema = dict(schema)
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ToolError(f"input_schema is not a valid JSON Schema at {where}: {exc.message}") from None
    if schema.get("type") != "object":
        raise ToolError(f"input_schema must describe an object (\"type\": \"object\" with \"properties\"), "
                        f"got type {schema.get('type')!r}")
    return schema


async def check_modules(security: Any, actor: Actor, modules: Any, entry_id: str) -> list[str]:
    """Known module names, each allowed (``lua.module``) by the caller's policies (denials are audited)."""
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise ToolError("modules must be a list of Lua module names, e.g. [\"json\"]")
    unknown = sorted(set(modules) - KNOWN_MODULES)
    if unknown:
        raise ToolError(f"unknown Lua module(s) {unknown}; available: {sorted(KNOWN_MODULES - {'process', 'channel'})}")
    for module in modules:
        try:
            await security.enforce(actor, "lua.module", module,
                                   details={"id": entry_id, "why": "modules: of a new tool"})
        except PermissionDenied as exc:
            raise ToolError(f"module {module!r} is not allowed for this tool: {exc}. Remove it from modules "
                            "and write the code without it") from None
    return list(dict.fromkeys(modules))


def check_source(source: Any, method: Any, entry_id: str) -> None:
    """The Lua compiles (syntax errors name the line)."""
    if not isinstance(source, str) or not source.strip():
        raise ToolError("source must be Lua code text, e.g. 'return {handler = function(args) ... end}'")
    if not isinstance(method, str) or not method.isidentifier():
        raise ToolError(f"method must be the name of the function the source returns, got {method!r}")
    try:
        compile_check(source, entry_id)
    except LuaCompileError as exc:
        raise ToolError(f"the Lua source does not compile: {exc}. Fix the syntax and call again") from None


async def run_examples(app: Any, candidate: Mapping[str, Any], examples: Any, actor: Actor) -> int:
    """Run each example in a fresh sandbox and compare; returns how many ran."""
    if not isinstance(examples, list):
        raise ToolError("examples must be a list of {input: {...}, output: ...}")
    schema = candidate["data"]["input_schema"]
    validator = jsonschema.validators.validator_for(schema)(schema)
    dry = actor.without(SIDE_EFFECTS)
    probe = {**candidate, "data": {**candidate["data"], "limits": dict(EXAMPLE_LIMITS)}}
    for i, example in enumerate(examples, 1):
        if not isinstance(example, Mapping) or "input" not in example or "output" not in example:
            raise ToolError(f"example {i} must be {{input: {{...}}, output: <expected result>}}")
        args = example["input"]
        problem = next(iter(validator.iter_errors(args)), None)
        if problem is not None:
            raise ToolError(f"example {i}: input {_show(args)} does not match input_schema: {problem.message}")
        try:
            got = await app.lua.call_function(probe, args, actor=dry)
        except LuaLimitExceeded as exc:
            raise ToolError(f"example {i} (input {_show(args)}) exceeded a limit: {_tail(exc, candidate['id'])} "
                            f"(examples run with at most {EXAMPLE_LIMITS['instructions']:,} instructions, "
                            f"{EXAMPLE_LIMITS['timeout']} s and 64 MiB); make sure the code terminates and stays "
                            "small") from None
        except (LuaError, EntryNotFound, PermissionDenied) as exc:
            raise ToolError(f"example {i} (input {_show(args)}) failed: {_tail(exc, candidate['id'])}") from None
        except WippyError as exc:
            raise ToolError(f"example {i} (input {_show(args)}) could not run: {exc}") from None
        if not same(example["output"], got):
            raise ToolError(f"example {i} (input {_show(args)}): expected {_show(example['output'])}, "
                            f"got {_show(got)}. Fix the code (or the example) and call again")
    return len(examples)


def same(expected: Any, got: Any) -> bool:
    """JSON equality as Lua returns it: 1 == 1.0, an empty table is both {} and []."""
    if isinstance(expected, bool) or isinstance(got, bool):
        return expected is got
    if isinstance(expected, (int, float)) and isinstance(got, (int, float)):
        return expected == got or (math.isnan(expected) and math.isnan(got))
    if expected in ({}, []) and got in ({}, []):
        return True
    if isinstance(expected, Mapping) and isinstance(got, Mapping):
        return set(map(str, expected)) == set(map(str, got)) and all(
            same(v, got.get(k, got.get(str(k)))) for k, v in expected.items())
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)):
        return len(expected) == len(got) and all(same(a, b) for a, b in zip(expected, got))
    return expected == got


def _tail(exc: Exception, entry_id: str) -> str:
    text = str(exc)
    return text[len(entry_id) + 2:] if text.startswith(entry_id + ": ") else text


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
