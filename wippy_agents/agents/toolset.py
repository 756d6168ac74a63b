"""``Toolset``: the tools one agent may call at one registry version, as the model sees them.

Built from the agent's ``tools:`` (ids and ``ns:*`` globs) and ``delegates:``
against a registry snapshot; the loop rebuilds it only when the snapshot (or
the agent's spec) changed, so a tool registered during a run is offered on
the very next turn at the cost of one identity check on the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping

from ..llm import TokenCounter, ToolSpec
from ..registry import Entry, Snapshot, kinds
from ..registry.ids import is_pattern
from ..registry.kinds import tool_visible_name
from .spec import AgentSpec, Delegate

__all__ = ["Toolset", "build_toolset", "FINAL_ANSWER", "DELEGATE_SCHEMA"]

log = logging.getLogger(__name__)

FINAL_ANSWER = ToolSpec(
    name="final_answer",
    description="Give the final answer to the user and end the task.",
    input_schema={"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]},
)

DELEGATE_SCHEMA = {
    "type": "object",
    "properties": {"task": {"type": "string", "description": "what the other agent should do, in full"}},
    "required": ["task"],
    "additionalProperties": False,
}


@dataclass(frozen=True, kw_only=True)
class Toolset:
    """Visible name -> tool entry / delegate, the specs sent to the model and their token cost."""

    version: int
    specs: tuple[ToolSpec, ...] = ()
    entries: Mapping[str, Entry] = field(default_factory=dict)
    delegates: Mapping[str, Delegate] = field(default_factory=dict)
    tokens: int = 0

    def names(self) -> list[str]:
        return [s.name for s in self.specs]


def _is_tool(entry: Entry) -> bool:
    return kinds.is_tool_kind(entry.kind) and entry.meta.get("type") == "tool"


def build_toolset(snapshot: Snapshot, spec: AgentSpec, counter: TokenCounter) -> Toolset:
    """The agent's tools at ``snapshot``; a name two tools share goes to the first (lint reports it)."""
    entries: dict[str, Entry] = {}
    specs: list[ToolSpec] = []

    def offer(entry: Entry) -> None:
        name = tool_visible_name(entry)
        other = entries.get(name)
        if other is not None:
            if other.id != entry.id:
                log.warning("agent %s: tools %s and %s are both named %r; offering the first",
                            spec.id, other.id, entry.id, name)
            return
        entries[name] = entry
        specs.append(ToolSpec(name=name, description=str(entry.meta.get("description") or ""),
                              input_schema=dict(entry.data.get("input_schema") or {"type": "object", "properties": {}})))

    for ref in spec.tools:
        if is_pattern(ref):
            for entry in snapshot.find(pattern=ref):
                if _is_tool(entry):
                    offer(entry)
        else:
            entry = snapshot.get(ref)
            if entry is None or not _is_tool(entry):
                log.warning("agent %s: tool %s is not a tool entry at registry version %s; not offered",
                            spec.id, ref, snapshot.version)
                continue
            offer(entry)
    delegates: dict[str, Delegate] = {}
    for d in spec.delegates:
        if d.name in entries or d.name in delegates:
            log.warning("agent %s: delegate %s is named %r like a tool; not offered", spec.id, d.id, d.name)
            continue
        delegates[d.name] = d
        specs.append(ToolSpec(name=d.name, description=d.description, input_schema=DELEGATE_SCHEMA))
    if spec.tool_choice == "required":
        specs.append(FINAL_ANSWER)
    return Toolset(version=snapshot.version, specs=tuple(specs), entries=entries, delegates=delegates,
                   tokens=counter.tools(specs))
