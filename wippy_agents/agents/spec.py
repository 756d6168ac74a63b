"""``AgentSpec``: an ``agent`` entry read once into a frozen value, and prompt rendering.

>>> render_prompt("Hi {{name}}", {"name": "Ada"}, where="app.prompts:p")
'Hi Ada'

The spec is rebuilt from the registry snapshot at every turn (cached per
entry object), so an agent whose entry changed mid-run (its prompt, its
model, its tools) uses the new definition on its next turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from ..errors import ConfigError, EntryNotFound, PromptError
from ..registry import Entry, Snapshot
from ..registry.ids import resolve_ref

__all__ = ["AgentSpec", "Budget", "Delegate", "render_prompt", "prompt_text", "DEFAULT_MAX_TURNS"]

DEFAULT_MAX_TURNS = 20
_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")


@dataclass(frozen=True, kw_only=True)
class Budget:
    """Limits of one run; None means unlimited."""

    max_total_tokens: int | None = None
    max_cost_usd: float | None = None


@dataclass(frozen=True, kw_only=True)
class Delegate:
    """Another agent offered to the model as a tool ``name``; runs as a child task."""

    id: str
    name: str
    description: str


@dataclass(frozen=True, kw_only=True)
class AgentSpec:
    """Everything the loop needs from an ``agent`` entry (ids already resolved)."""

    id: str
    model: str | None
    prompt: str | None  # a prompt entry id, or None when ``inline_prompt`` holds text
    inline_prompt: str | None
    tools: tuple[str, ...] = ()
    delegates: tuple[Delegate, ...] = ()
    policies: tuple[str, ...] = ()
    max_turns: int = DEFAULT_MAX_TURNS
    budget: Budget = Budget()
    temperature: float | None = None
    max_output_tokens: int | None = None
    tool_choice: Literal["auto", "required"] = "auto"
    max_tool_result_tokens: int | None = None
    context_strategy: Literal["drop", "summarise"] = "drop"
    variables: Mapping[str, Any] | None = None
    source: str | None = None  # a Lua agent drives its own loop
    method: str = "handler"
    where: str = ""

    @classmethod
    def from_entry(cls, entry: Entry) -> "AgentSpec":
        """Read an ``agent`` entry; raises ``ConfigError`` naming the entry for a wrong kind."""
        if entry.kind != "agent":
            raise ConfigError(f"{entry.where()}: {str(entry.id)!r} is a {entry.kind} entry, not an agent", id=str(entry.id))
        ns = entry.id.namespace
        data = entry.data
        prompt = data.get("prompt")
        prompt_id = inline = None
        if isinstance(prompt, str):
            if ":" in prompt and not any(c.isspace() for c in prompt):
                prompt_id = resolve_ref(prompt, namespace=ns)
            else:
                inline = prompt
        delegates = []
        for item in data.get("delegates") or ():
            did = resolve_ref(item["id"], namespace=ns)
            delegates.append(Delegate(
                id=did,
                name=item.get("name") or did.rpartition(":")[2],
                description=item.get("description") or f"Ask the agent {did} to do a task; it answers with text.",
            ))
        budget = data.get("budget") or {}
        return cls(
            id=str(entry.id),
            model=resolve_ref(data["model"], namespace=ns) if data.get("model") else None,
            prompt=prompt_id,
            inline_prompt=inline,
            tools=tuple(resolve_ref(t, namespace=ns) if ":" not in t else t for t in data.get("tools") or ()),
            delegates=tuple(delegates),
            policies=tuple(resolve_ref(p, namespace=ns) for p in data.get("policies") or ()),
            max_turns=int(data.get("max_turns") or DEFAULT_MAX_TURNS),
            budget=Budget(max_total_tokens=budget.get("max_total_tokens"), max_cost_usd=budget.get("max_cost_usd")),
            temperature=data.get("temperature"),
            max_output_tokens=data.get("max_output_tokens"),
            tool_choice=data.get("tool_choice") or "auto",
            max_tool_result_tokens=data.get("max_tool_result_tokens"),
            context_strategy=(data.get("context") or {}).get("strategy") or "drop",
            variables=dict(data.get("variables") or {}),
            source=data.get("source"),
            method=data.get("method") or "handler",
            where=entry.where(),
        )

    @property
    def is_lua(self) -> bool:
        return bool(self.source)

    def system_prompt(self, snapshot: Snapshot, variables: Mapping[str, Any] | None = None) -> str:
        """The rendered system prompt: defaults of the prompt entry, then the agent's, then ``variables``.

        Raises ``EntryNotFound`` for a prompt entry that is gone and ``PromptError``
        for a ``{{variable}}`` nobody filled.
        """
        if self.inline_prompt is not None:
            return render_prompt(self.inline_prompt, {**(self.variables or {}), **(variables or {})}, where=self.id)
        if self.prompt is None:
            return ""
        entry = snapshot.get(self.prompt)
        if entry is None:
            raise EntryNotFound(f"agent {self.id!r}: prompt {self.prompt!r} does not exist", id=self.prompt)
        merged = {**(entry.data.get("variables") or {}), **(self.variables or {}), **(variables or {})}
        return render_prompt(prompt_text(entry), merged, where=f"{self.prompt} ({entry.where()})")


def prompt_text(entry: Entry) -> str:
    """The text of a ``prompt`` entry (``text``, or ``source`` already read by the loader)."""
    text = entry.data.get("text")
    return text if isinstance(text, str) else str(entry.data.get("source") or "")


def render_prompt(text: str, variables: Mapping[str, Any], *, where: str = "prompt") -> str:
    """Replace ``{{name}}`` (``{{a.b}}`` reads a nested mapping) with its value.

    Raises ``PromptError`` listing every unfilled variable, so the whole fix is one edit.
    """
    missing: list[str] = []

    def fill(match: re.Match) -> str:
        name = match.group(1)
        value: Any = variables
        for part in name.split("."):
            if isinstance(value, Mapping) and part in value:
                value = value[part]
            else:
                missing.append(name)
                return match.group(0)
        return value if isinstance(value, str) else str(value)

    out = _VAR.sub(fill, text)
    if missing:
        names = ", ".join(dict.fromkeys(missing))
        raise PromptError(
            f"{where}: prompt variable(s) {names} have no value; give them in the prompt's or the agent's "
            "`variables:` or pass them when running the agent", where=where, missing=list(dict.fromkeys(missing)),
        )
    return out
