"""Summaries of a conversation's oldest turns (``context: {strategy: summarise}`` and ``/compact``).

The model writes the summary; the call is a journaled model step of the task
that asked for it (named ``model`` like every model call, its reply marked
``summary_of``), so a resumed run replays the summary instead of asking again
and usage counts it. Whole groups are summarised — a tool call always goes
with its result.

Two users:

* the turn loop, when the conversation outgrows the model's window and the
  agent's strategy is ``summarise`` (``AgentLoop``);
* ``/compact`` in a console session: ``await app.agents.compact(agent_id,
  history)`` (``AgentService.compact``) runs one compaction as a task of its
  own and returns a ``Compaction`` whose ``history`` replaces the session's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..llm import Done, Message, ModelConfig, ModelReply, Provider, Usage

__all__ = ["Compaction", "SUMMARY_SYSTEM", "summary_prompt", "ask_summary", "split_for_compact", "summary_message"]

SUMMARY_SYSTEM = (
    "You compress the earlier part of a conversation between a person and an AI agent that uses tools, so the "
    "agent can continue without it. Write a short factual summary: what the person asked for, what was done "
    "(tools called, with the results that matter: numbers, names, ids, paths, errors), what was decided, and "
    "what is still open. Keep exact values. No preamble, no advice; plain sentences or a short list.")
_EACH = 2000  # characters kept of one message in the transcript given to the summariser


def summary_message(text: str, replaced: int) -> Message:
    """The system note that stands for ``replaced`` earlier messages."""
    return Message.system(f"[Summary of the {replaced} earlier messages of this conversation, which were replaced "
                          f"to fit the context window]\n{text}")


def _clip(text: str) -> str:
    return text if len(text) <= _EACH else text[:_EACH] + " [...]"


def summary_prompt(messages: Sequence[Message], *, previous: str = "") -> list[Message]:
    """The messages of the summarising call: an instruction, then the part to summarise as a transcript."""
    lines = [f"Summary so far:\n{previous}\n"] if previous else []
    for m in messages:
        if m.role == "tool":
            lines.append(f"[result of {m.name or 'a tool'}]: {_clip(m.content)}")
        elif m.role == "assistant":
            if m.content:
                lines.append(f"agent: {_clip(m.content)}")
            for call in m.tool_calls:
                lines.append(f"[agent called {call.name} with {_clip(json.dumps(call.arguments, ensure_ascii=False))}]")
        elif m.role == "user":
            lines.append(f"person: {_clip(m.content)}")
        else:
            lines.append(f"[note]: {_clip(m.content)}")
    return [Message.system(SUMMARY_SYSTEM),
            Message.user("Summarise this part of the conversation:\n\n" + "\n".join(lines))]


async def ask_summary(provider: Provider, cfg: ModelConfig, messages: Sequence[Message], *,
                      previous: str = "") -> ModelReply:
    """One summarising model call (no tools); the caller journals it."""
    reply: ModelReply | None = None
    async for event in provider.stream(summary_prompt(messages, previous=previous), model_cfg=cfg):
        if isinstance(event, Done):
            reply = event.reply
    assert reply is not None, "a provider stream always ends with Done"
    return reply


def split_for_compact(history: Sequence[Message], keep_turns: int = 1) -> tuple[list[Message], list[Message]]:
    """``(old, kept)``: the messages to summarise and the last ``keep_turns`` turns (each starts at a
    person's message, so a tool call and its result stay on one side)."""
    starts = [i for i, m in enumerate(history) if m.role == "user"]
    if len(starts) <= keep_turns:
        return [], list(history)
    cut = starts[-keep_turns] if keep_turns > 0 else len(history)
    return list(history[:cut]), list(history[cut:])


@dataclass(frozen=True, kw_only=True)
class Compaction:
    """The outcome of ``/compact``: the summary, the history to continue with, what it cost."""

    summary: str
    history: list[dict[str, Any]] = field(default_factory=list)
    replaced: int = 0
    usage: Usage = field(default_factory=Usage)
    task_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "history": self.history, "replaced": self.replaced,
                "usage": self.usage.to_dict(), "task_id": self.task_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Compaction":
        return cls(summary=str(data.get("summary") or ""), history=list(data.get("history") or ()),
                   replaced=int(data.get("replaced") or 0), usage=Usage.from_dict(data.get("usage") or {}),
                   task_id=data.get("task_id"))
