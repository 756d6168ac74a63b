"""Stamping: code written by a non-owner carries who wrote it and the policies it may run with.

The guard refuses code written by an agent (or by agent-written code) unless
``run_as_policies`` is within the writer's policies; the self-modification
tools and the Lua write path add it here, so the model and Lua authors never
have to.
"""

from __future__ import annotations

from typing import Any, Mapping

from .actor import Actor
from .engine import RUN_AS_FIELD
from ..registry import kinds

__all__ = ["stamp_entry", "stamp_change", "stamp_fields"]


def stamp_fields(actor: Actor) -> tuple[list[str], str]:
    """(run_as_policies, created_by) for code ``actor`` writes."""
    return sorted(actor.held_policies() or ()), actor.label


def stamp_entry(spec: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
    """A create spec ``{id, kind, meta, ...fields}`` stamped for ``actor`` (unchanged for an owner)."""
    out = dict(spec)
    if actor.unrestricted or not kinds.runs_as_creator(str(out.get("kind"))):
        return out
    run_as, label = stamp_fields(actor)
    if isinstance(out.get("data"), Mapping):
        out["data"] = {**out["data"], RUN_AS_FIELD: run_as}
    else:
        out[RUN_AS_FIELD] = run_as
    out["meta"] = {**dict(out.get("meta") or {}), "created_by": label}
    return out


def stamp_change(registry: Any, change: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
    """A Lua change ``{op, id, entry}`` stamped for ``actor``: creates and updates of code."""
    out = dict(change)
    if actor.unrestricted or not isinstance(out.get("entry"), Mapping):
        return out
    entry = dict(out["entry"])
    if out.get("op") == "create":
        out["entry"] = stamp_entry(entry, actor)
        return out
    if out.get("op") == "update":
        current = registry.get(str(out.get("id"))) if out.get("id") else None
        kind = entry.get("kind") or (current.kind if current is not None else None)
        if kind is not None and kinds.runs_as_creator(str(kind)):
            run_as, label = stamp_fields(actor)
            entry[RUN_AS_FIELD] = run_as
            meta = entry.get("meta") if isinstance(entry.get("meta"), Mapping) else (
                current.meta if current is not None else {})
            entry["meta"] = {**dict(meta), "updated_by": label}
            out["entry"] = entry
    return out
