"""``AgentResult``: how an agent run ended, as a value (and as the task's JSON result)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ProviderError
from ..llm import Usage

__all__ = ["AgentResult", "StopReason", "STOP_REASONS", "model_call_failed"]

# final: the model answered; max_turns / budget / loop: a limit ended the run;
# cancelled: someone cancelled the task.
StopReason = Literal["final", "max_turns", "budget", "loop", "cancelled"]
STOP_REASONS = ("final", "max_turns", "budget", "loop", "cancelled")


@dataclass(frozen=True, kw_only=True)
class AgentResult:
    """The answer of a run and why it stopped; ``detail`` says it in one sentence.

    >>> AgentResult(answer="3", stop_reason="final", agent="app.agents:a").ok
    True
    """

    answer: str
    stop_reason: StopReason
    agent: str
    detail: str = ""
    turns: int = 0
    usage: Usage = field(default_factory=Usage)
    task_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.stop_reason == "final"

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "stop_reason": self.stop_reason, "agent": self.agent, "detail": self.detail,
                "turns": self.turns, "usage": self.usage.to_dict(), "task_id": self.task_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AgentResult":
        return cls(answer=data.get("answer") or "", stop_reason=data["stop_reason"], agent=data.get("agent") or "",
                   detail=data.get("detail") or "", turns=int(data.get("turns") or 0),
                   usage=Usage.from_dict(data.get("usage") or {}), task_id=data.get("task_id"))


def model_call_failed(error: ProviderError, task_id: str) -> ProviderError:
    """The error that ends a run whose model call failed; the call was not journaled, so says how to resume."""
    return type(error)(f"{error.message}; the call was not recorded, so `wippy tasks resume {task_id}` makes it "
                       "again", **{**error.details, "task_id": task_id, "resumable": True})
