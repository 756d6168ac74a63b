"""``RunLimits``: the limits of one agent run — ``max_turns``, the token/cost ``budget``, loop detection.

One object per run, used the same way by the turn loop and by a Lua agent's
``llm.generate``/``llm.stream`` calls, so both are held to the same rules
(SPEC §6). Every check reads only journaled facts (replies' usage, token
counts of the prompt), so a replayed run stops exactly where the first did.

    >>> limits = RunLimits(max_turns=2, budget=Budget(max_total_tokens=1000))
    >>> limits.before_call(prompt_tokens=200, max_output_tokens=300, cfg=cfg)   # doctest: +SKIP
    >>> limits.after_call(reply)                                               # doctest: +SKIP

The budget check before a call takes its worst case: the prompt's tokens plus
the reply's ``max_output_tokens`` (when the model entry or the agent sets
one; otherwise the prompt alone), priced with the entry's prices. A call that
could overshoot is refused before it is sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..llm import ModelConfig, ModelReply, ToolCall, Usage
from ..llm.pricing import cost_usd
from .spec import Budget

__all__ = ["RunLimits", "LimitReached", "LOOP_REPEATS"]

LOOP_REPEATS = 3  # the same call with the same arguments in this many turns running is a loop


@dataclass(frozen=True, kw_only=True)
class LimitReached:
    """Why a run must stop: ``reason`` is an ``AgentResult`` stop reason, ``detail`` one sentence."""

    reason: str
    detail: str


@dataclass(kw_only=True)
class RunLimits:
    """Turn count, usage and call streaks of one run; not thread-safe (one run, one task)."""

    max_turns: int
    budget: Budget = field(default_factory=Budget)
    usage: Usage = field(default_factory=Usage)
    turns: int = 0
    _streaks: dict[str, int] = field(default_factory=dict)

    def before_call(self, *, prompt_tokens: int, max_output_tokens: int | None,
                    cfg: ModelConfig) -> LimitReached | None:
        """Whether the next model call may be made; counts it as a turn when it may."""
        if self.turns >= self.max_turns:
            return LimitReached(reason="max_turns",
                                detail=f"reached max_turns ({self.max_turns}) without a final answer")
        out = max_output_tokens or 0
        b = self.budget
        worst = self.usage.total_tokens + prompt_tokens + out
        what = f"{prompt_tokens} prompt tokens" + (f" + {out} max output" if out else "")
        if b.max_total_tokens is not None and worst > b.max_total_tokens:
            return LimitReached(reason="budget", detail=(
                f"the next model call could use {what} which, with the {self.usage.total_tokens} used so far, "
                f"would exceed the budget of {b.max_total_tokens} tokens; it was not sent"))
        worst_cost = self.usage.cost_usd + cost_usd(prompt_tokens, out, cfg)
        if b.max_cost_usd is not None and worst_cost > b.max_cost_usd:
            return LimitReached(reason="budget", detail=(
                f"the next model call could cost up to ${worst_cost - self.usage.cost_usd:.4f} ({what}) which, "
                f"with the ${self.usage.cost_usd:.4f} spent so far, would exceed the budget of "
                f"${b.max_cost_usd:.4f}; it was not sent"))
        self.turns += 1
        return None

    def after_call(self, reply: ModelReply) -> LimitReached | None:
        """Add the reply's usage; a budget overshoot (a reply longer than its worst case was known) stops."""
        self.usage = self.usage + reply.usage
        b = self.budget
        if b.max_total_tokens is not None and self.usage.total_tokens > b.max_total_tokens:
            return LimitReached(reason="budget", detail=(
                f"used {self.usage.total_tokens} tokens, over the budget of {b.max_total_tokens}"))
        if b.max_cost_usd is not None and self.usage.cost_usd > b.max_cost_usd:
            return LimitReached(reason="budget", detail=(
                f"cost ${self.usage.cost_usd:.4f}, over the budget of ${b.max_cost_usd:.4f}"))
        return None

    def repeated(self, calls: tuple[ToolCall, ...]) -> LimitReached | None:
        """A loop: one call with the same arguments in ``LOOP_REPEATS`` turns running."""
        streaks: dict[str, int] = {}
        for call in calls:
            key = call.name + "\x00" + (call.raw_arguments if call.parse_error else
                                        json.dumps(call.arguments, sort_keys=True, ensure_ascii=False))
            streaks[key] = self._streaks.get(key, 0) + 1
            if streaks[key] >= LOOP_REPEATS:
                return LimitReached(reason="loop", detail=(
                    f"the model called {call.name!r} with the same arguments {LOOP_REPEATS} turns in a row"))
        self._streaks = streaks  # a call missing from this turn breaks its streak
        return None
