"""The self-modification tools, namespace ``wippy.self`` (SPEC §8, issue 7).

``find_entries``, ``get_entry``, ``create_tool``, ``update_tool``,
``update_entry``, ``delete_entry``, ``history``, ``rollback``, ``create_agent``.
Each acts as the calling agent's actor: reads need ``registry.read``, every
write goes through ``Registry.apply``, where the security guard enforces
``registry.write`` and the no-escalation rules (and asks a person for
``approval: ask`` rules). Every refusal comes back as a ``ToolError`` whose
message says what to fix.

A write is one registry version whose author is the agent run
(``agent:<id>/<task>``) and whose reason names the tool call. The tools are
idempotent: a call the task journal runs again after a crash finds its own
earlier write (by ``[call <task>/<call>]``) and answers the same version.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from ..errors import PermissionDenied, StaleVersion, ToolError, ValidationError, WippyError
from ..registry import Changeset
from ..security import Actor, as_actor, stamp_change, stamp_entry
from ..security.secrets import redact
from .selfmod_check import check_id, check_modules, check_schema, check_source, run_examples
from .tools import ToolCallContext, python_tool

__all__ = ["SELF_TOOLS"]

log = logging.getLogger(__name__)

NS = "wippy.self"
SELF_TOOLS = tuple(f"{NS}:{n}" for n in ("find_entries", "get_entry", "create_tool", "update_tool", "update_entry",
                                          "delete_entry", "history", "rollback", "create_agent"))
_ID = {"type": "string", "description": "entry id 'namespace:name'"}
_TOOL_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "the new tool's id 'namespace:name'; the model sees the name"},
        "description": {"type": "string", "minLength": 1, "description": "what the tool does, for the model"},
        "input_schema": {"type": "object", "description": "JSON Schema of the tool's argument object"},
        "source": {"type": "string", "description": "Lua 5.4 chunk returning a table of functions"},
        "method": {"type": "string", "default": "handler", "description": "the function to call"},
        "modules": {"type": "array", "items": {"type": "string"}, "default": [], "description": "Lua modules used"},
        "examples": {"type": "array", "items": {"type": "object", "properties": {"input": {}, "output": {}},
                                                "required": ["input", "output"]},
                     "description": "example calls; each must return its output before the tool goes live"},
        "idempotent": {"type": "boolean", "default": False, "description": "safe to run again after a crash"},
    },
    "required": ["id", "description", "input_schema", "source"],
}


# -- plumbing ----------------------------------------------------------------------

def _security(ctx: ToolCallContext) -> Any:
    return ctx.app.security


def _key(ctx: ToolCallContext) -> str | None:
    return f"{ctx.task_id}/{ctx.call_id}" if ctx.task_id and ctx.call_id else None


def _reason(what: str, ctx: ToolCallContext) -> str:
    key = _key(ctx)
    return f"{what} (wippy.self tool call)" + (f" [call {key}]" if key else "")


async def _earlier(ctx: ToolCallContext) -> int | None:
    """The version this very tool call already wrote (a journal re-run after a crash), if any."""
    key = _key(ctx)
    if key is None:
        return None
    marker = f"[call {key}]"
    for record in await ctx.app.registry.history(limit=500):
        if record.reason.endswith(marker):
            return record.version
    return None


async def _apply(ctx: ToolCallContext, actor: Actor, what: str, fill: Any, *,
                 replay_check: bool = False) -> dict[str, Any]:
    """Build a changeset with ``fill(cs)``, apply it as ``actor``; ``{version}`` or a ``ToolError``.

    ``replay_check``: look for this call's earlier write in the history first (the callers
    that can tell from the live entry do that in memory instead)."""
    if replay_check:
        earlier = await _earlier(ctx)
        if earlier is not None:
            return {"version": earlier}
    cs = Changeset(base_version=None, author=actor.label, reason=_reason(what, ctx), actor=actor)
    try:
        fill(cs)
        version = await ctx.app.registry.apply(cs)
    except PermissionDenied as exc:
        raise ToolError(f"not allowed: {exc}", denied=True) from None
    except ValidationError as exc:
        problems = (exc.details or {}).get("problems") or []
        text = "; ".join(_problem(p) for p in problems[:6]) or str(exc)
        raise ToolError(f"the registry refused {what}: {text}. Fix it and call again") from None
    except StaleVersion as exc:
        raise ToolError(f"the registry was busy ({exc}); call again") from None
    except WippyError as exc:
        raise ToolError(f"{what} failed: {exc}") from None
    return {"version": version}


def _problem(p: Any) -> str:
    if isinstance(p, Mapping):
        return f"{p.get('entry') or ''}: {p.get('message')}".lstrip(": ")
    return str(p)


def _readable(ctx: ToolCallContext, actor: Actor, entry_id: str) -> bool:
    return _security(ctx).check(actor, "registry.read", entry_id).allowed


async def _read(ctx: ToolCallContext, actor: Actor, entry_id: str) -> Any:
    try:
        await _security(ctx).enforce(actor, "registry.read", entry_id)
    except PermissionDenied as exc:
        raise ToolError(f"not allowed: {exc}", denied=True) from None
    entry = ctx.app.registry.get(entry_id)
    if entry is None:
        raise ToolError(f"there is no entry {entry_id!r}; use find_entries to see what exists")
    return entry


def _view(entry: Any) -> dict[str, Any]:
    """What the model sees of an entry: secret-named values are redacted (SPEC §8)."""
    return {"id": str(entry.id), "kind": entry.kind, "meta": redact(dict(entry.meta)), "data": redact(dict(entry.data))}


# -- reading -----------------------------------------------------------------------

@python_tool(f"{NS}:find_entries", idempotent=True,
             description="List registry entries (id, kind, description) by kind, namespace, meta.type or id glob.",
             input_schema={"type": "object", "properties": {
                 "kind": {"type": "string"}, "namespace": {"type": "string"},
                 "type": {"type": "string", "description": "meta.type, e.g. tool"},
                 "pattern": {"type": "string", "description": "id glob, e.g. app.tools:*"}}})
async def find_entries(args: dict, ctx: ToolCallContext) -> Any:
    actor = as_actor(ctx.actor)
    criteria: dict[str, Any] = {}
    for name in ("kind", "namespace"):
        if args.get(name):
            criteria[name] = args[name]
    if args.get("type"):
        criteria["meta.type"] = args["type"]
    found = ctx.app.registry.find(criteria, pattern=args["pattern"]) if args.get("pattern") else \
        ctx.app.registry.find(criteria)
    return [{"id": str(e.id), "kind": e.kind, "description": e.meta.get("description", "")}
            for e in found if _readable(ctx, actor, str(e.id))][:200]


@python_tool(f"{NS}:get_entry", idempotent=True, description="Read one registry entry {id, kind, meta, data}.",
             input_schema={"type": "object", "properties": {"id": _ID}, "required": ["id"]})
async def get_entry(args: dict, ctx: ToolCallContext) -> Any:
    return _view(await _read(ctx, as_actor(ctx.actor), str(args["id"])))


@python_tool(f"{NS}:history", idempotent=True,
             description="Registry versions, newest first (who, why, which entries); optionally for one entry.",
             input_schema={"type": "object", "properties": {"id": _ID, "limit": {"type": "integer", "minimum": 1,
                                                                                  "maximum": 200}}})
async def history(args: dict, ctx: ToolCallContext) -> Any:
    actor = as_actor(ctx.actor)
    wanted = args.get("id")
    if wanted and ctx.app.registry.get(str(wanted)) is not None:
        await _read(ctx, actor, str(wanted))
    limit = int(args.get("limit") or 20)
    out = []
    for record in await ctx.app.registry.history(limit=1000 if wanted else limit):  # one entry: scan 1000 back
        ids = [c.get("id") for c in record.changes]
        if wanted and wanted not in ids:
            continue
        out.append({"version": record.version, "at": record.created_at, "author": record.author,
                    "reason": record.reason, "changes": [{"op": c.get("op"), "id": c.get("id")} for c in record.changes
                                                         if _readable(ctx, actor, str(c.get("id")))]})
        if len(out) >= limit:
            break
    return out


# -- tools -------------------------------------------------------------------------

async def _tool_entry(args: dict, ctx: ToolCallContext, actor: Actor, *, update: bool) -> dict[str, Any]:
    entry_id = check_id(args.get("id"))
    existing = ctx.app.registry.get(entry_id)
    if update and (existing is None or existing.kind != "function.lua" or existing.meta.get("type") != "tool"):
        raise ToolError(f"there is no Lua tool {entry_id!r} to update; use create_tool for a new one")
    if not update and existing is not None:
        raise ToolError(f"{entry_id!r} already exists (a {existing.kind}); choose another id or use update_tool")
    description = args.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ToolError("description must say what the tool does (the model reads it)")
    sec = _security(ctx)
    # fail before running examples; the registry's write guard checks (and audits) again at apply
    decision = sec.check(actor, "registry.write", entry_id)
    if not decision.allowed:
        try:
            await sec.deny(actor, "registry.write", entry_id, decision.reason, rule=decision.rule)
        except PermissionDenied as exc:
            raise ToolError(f"not allowed: {exc}", denied=True) from None
    schema = check_schema(args.get("input_schema"))
    modules = await check_modules(sec, actor, args.get("modules") or [], entry_id)
    method = args.get("method") or "handler"
    check_source(args.get("source"), method, entry_id)
    meta = {"type": "tool", "description": description.strip(), "write_key": _key(ctx) or ""}
    if existing is not None:
        meta = {**existing.meta, **meta}
    spec = stamp_entry({"id": entry_id, "kind": "function.lua", "meta": meta, "source": args["source"],
                        "method": method, "modules": modules, "input_schema": schema,
                        "examples": list(args.get("examples") or []), "idempotent": bool(args.get("idempotent"))},
                       actor)
    if existing is not None and "created_by" in existing.meta:  # an update keeps who first wrote it
        spec["meta"] = {**spec["meta"], "created_by": existing.meta["created_by"], "updated_by": actor.label}
    candidate = {"id": entry_id, "kind": "function.lua", "meta": spec["meta"],
                 "data": {k: v for k, v in spec.items() if k not in ("id", "kind", "meta")}}
    runner = sec.run_as(actor, candidate)
    await run_examples(ctx.app, candidate, spec["examples"], runner)
    return spec


@python_tool(f"{NS}:create_tool", idempotent=True, input_schema=_TOOL_SCHEMA,
             description="Write a new Lua tool. It is checked (schema, compile, examples) and live on your next turn; "
                         "answers {id, version}. Errors say what to fix.")
async def create_tool(args: dict, ctx: ToolCallContext) -> Any:
    actor = as_actor(ctx.actor)
    earlier = ctx.app.registry.get(str(args.get("id")))
    if earlier is not None and _key(ctx) and earlier.meta.get("write_key") == _key(ctx):
        version = await _earlier(ctx)  # this call already created it (journal re-run after a crash)
        if version is not None:
            return {"id": str(earlier.id), "version": version}
    spec = await _tool_entry(args, ctx, actor, update=False)
    result = await _apply(ctx, actor, f"create_tool {spec['id']}", lambda cs: cs.create(spec))
    return {"id": spec["id"], **result}


@python_tool(f"{NS}:update_tool", idempotent=True, input_schema=_TOOL_SCHEMA,
             description="Replace an existing Lua tool (same fields as create_tool, checked the same way); "
                         "answers {id, version}.")
async def update_tool(args: dict, ctx: ToolCallContext) -> Any:
    actor = as_actor(ctx.actor)
    current = ctx.app.registry.get(str(args.get("id")))
    if current is not None and _key(ctx) and current.meta.get("write_key") == _key(ctx):
        version = await _earlier(ctx)
        if version is not None:
            return {"id": str(current.id), "version": version}
    spec = await _tool_entry(args, ctx, actor, update=True)
    fields = {k: v for k, v in spec.items() if k not in ("id", "kind")}
    result = await _apply(ctx, actor, f"update_tool {spec['id']}", lambda cs: cs.update(spec["id"], fields))
    return {"id": spec["id"], **result}


# -- other entries -------------------------------------------------------------------

@python_tool(f"{NS}:update_entry", idempotent=True,
             description="Change fields of an entry you may write (a prompt, your model, a workflow ...): "
                         "changes = {field: value, field: null removes, meta: {...} replaces}. Answers {id, version}.",
             input_schema={"type": "object", "properties": {"id": _ID, "changes": {"type": "object"}},
                           "required": ["id", "changes"]})
async def update_entry(args: dict, ctx: ToolCallContext) -> Any:
    actor = as_actor(ctx.actor)
    entry_id = check_id(args["id"])
    if ctx.app.registry.get(entry_id) is None:
        raise ToolError(f"there is no entry {entry_id!r} to update; use find_entries to see what exists")
    change = stamp_change(ctx.app.registry, {"op": "update", "id": entry_id, "entry": dict(args["changes"])}, actor)
    result = await _apply(ctx, actor, f"update_entry {entry_id}", lambda cs: cs.update(entry_id, change["entry"]),
                          replay_check=True)
    return {"id": entry_id, **result}


@python_tool(f"{NS}:delete_entry", idempotent=True, description="Delete an entry you may write. Answers {id, version}.",
             input_schema={"type": "object", "properties": {"id": _ID}, "required": ["id"]})
async def delete_entry(args: dict, ctx: ToolCallContext) -> Any:
    actor = as_actor(ctx.actor)
    entry_id = check_id(args["id"])
    if ctx.app.registry.get(entry_id) is None:
        earlier = await _earlier(ctx)
        if earlier is not None:
            return {"id": entry_id, "version": earlier}
        raise ToolError(f"there is no entry {entry_id!r} to delete")
    result = await _apply(ctx, actor, f"delete_entry {entry_id}", lambda cs: cs.delete(entry_id))
    return {"id": entry_id, **result}


@python_tool(f"{NS}:rollback", idempotent=True,
             description="Restore the registry as it was at a version (see history), as one new version; "
                         "only entries you may write can change. Answers {version}.",
             input_schema={"type": "object", "properties": {"version": {"type": "integer", "minimum": 1}},
                           "required": ["version"]})
async def rollback(args: dict, ctx: ToolCallContext) -> Any:
    actor = as_actor(ctx.actor)
    earlier = await _earlier(ctx)
    if earlier is not None:
        return {"version": earlier}
    target = int(args["version"])
    try:
        version = await ctx.app.registry.rollback(target, author=actor.label, actor=actor,
                                                  reason=_reason(f"rollback to version {target}", ctx))
    except PermissionDenied as exc:
        raise ToolError(f"not allowed: {exc}", denied=True) from None
    except WippyError as exc:
        raise ToolError(f"rollback to version {target} failed: {exc}") from None
    return {"version": version}


@python_tool(f"{NS}:create_agent", idempotent=True,
             description="Define a new agent (a helper you can delegate to). Its policies must be ones you hold. "
                         "Answers {id, version}.",
             input_schema={"type": "object", "properties": {
                 "id": _ID, "description": {"type": "string", "minLength": 1},
                 "prompt": {"type": "string", "description": "system prompt text, or a prompt entry id"},
                 "model": {"type": "string", "description": "an llm.model entry id"},
                 "tools": {"type": "array", "items": {"type": "string"}},
                 "policies": {"type": "array", "items": {"type": "string"}},
                 "delegates": {"type": "array", "items": {"type": "object"}},
                 "max_turns": {"type": "integer", "minimum": 1}},
                 "required": ["id", "description", "prompt", "model"]})
async def create_agent(args: dict, ctx: ToolCallContext) -> Any:
    actor = as_actor(ctx.actor)
    entry_id = check_id(args["id"])
    existing = ctx.app.registry.get(entry_id)
    if existing is not None:
        if _key(ctx) and existing.meta.get("write_key") == _key(ctx):
            version = await _earlier(ctx)
            if version is not None:
                return {"id": entry_id, "version": version}
        raise ToolError(f"{entry_id!r} already exists (a {existing.kind}); choose another id")
    spec: dict[str, Any] = {"id": entry_id, "kind": "agent",
                            "meta": {"description": args["description"], "created_by": actor.label,
                                     "write_key": _key(ctx) or ""},
                            "prompt": args["prompt"], "model": args["model"]}
    for name in ("tools", "policies", "delegates", "max_turns"):
        if args.get(name) is not None:
            spec[name] = args[name]
    result = await _apply(ctx, actor, f"create_agent {entry_id}", lambda cs: cs.create(spec))
    return {"id": entry_id, **result}
