"""Agent kinds: ``agent``, ``prompt`` and ``llm.model``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from ..entry import Entry, Problem
from .base import KindHandler, RefField

if TYPE_CHECKING:
    from ..snapshot import Snapshot

__all__ = ["Agent", "Prompt", "LlmModel", "tool_visible_name"]


def tool_visible_name(entry: Entry) -> str:
    """The name a model sees for a tool: ``meta.alias`` if set, else the entry's name."""
    alias = entry.meta.get("alias")
    return alias if isinstance(alias, str) and alias else entry.id.name


class Agent(KindHandler):
    kind = "agent"
    schema_file = "agent.json"
    description = "An LLM agent: model, prompt, tools, delegates, policies, limits (or a Lua agent)."
    refs = (
        RefField(path="model", kinds=("llm.model",)),
        RefField(path="prompt", kinds=("prompt",), inline_text=True),
        RefField(path="tools[]", wildcard=True),
        RefField(path="delegates[].id", kinds=("agent",)),
        RefField(path="policies[]", kinds=("security.policy",)),
        RefField(path="imports.*", kinds=("library.lua",)),
    )
    code_fields = ("source",)  # a Lua agent drives its own loop

    def check(self, entry: Entry, snapshot: "Snapshot") -> Iterable[Problem]:
        """Two tools (or delegates) of one agent with the same visible name are an error (§6)."""
        seen: dict[str, str] = {}
        for ref in self.references(entry):
            if ref.label.startswith("tools["):
                targets = snapshot.find(pattern=ref.target) if ref.is_pattern else [snapshot.get(ref.target)]
                for tool in targets:
                    if tool is not None:
                        yield from _claim(entry, seen, tool_visible_name(tool), str(tool.id))
        for i, item in enumerate(entry.data.get("delegates") or []):
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                name = item.get("name") or item["id"].rpartition(":")[2]
                yield from _claim(entry, seen, str(name), f"delegate {item['id']}")


def _claim(entry: Entry, seen: dict[str, str], name: str, owner: str) -> Iterable[Problem]:
    other = seen.setdefault(name, owner)
    if other != owner:
        yield Problem.about(
            entry,
            f"two tools are both visible to the model as {name!r}: {other} and {owner}; "
            "set meta.alias on one of them",
            field="tools",
        )


class Prompt(KindHandler):
    kind = "prompt"
    schema_file = "prompt.json"
    description = "Prompt text (inline or source: file://x.md) with {{variables}}."


class LlmModel(KindHandler):
    kind = "llm.model"
    schema_file = "llm.model.json"
    description = "A model: provider, model name, API key env var, window, prices; scripted for tests."
