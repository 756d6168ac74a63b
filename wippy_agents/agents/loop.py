"""The agent turn loop, as the runner of durable tasks of kind ``agent``.

Per turn: re-read the agent, its model, prompt and tools from the live
registry snapshot (rebuilt only when the snapshot changed), build the context
within the model's window, call the model as ONE journaled step (the reply is
stored, never the history), then run the reply's tool calls — in parallel,
each its own journaled step, numbered in the order the model gave them.
Replay rebuilds the conversation from the journaled replies and results, so a
resumed run makes no model or tool call that already finished.

The run stops at a final answer, ``max_turns``, a token/cost budget, or a loop
(the same call with the same arguments in 3 turns running); a cancelled task
ends at its next step. Every tool failure (bad or non-JSON arguments, unknown
tool, refusal, raised error, Lua limit) goes back to the model as the tool's
result and the run continues.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from ..errors import LeaseLost, ProviderError, TaskCancelled, ToolError, WippyError
from ..llm import Done, Message, ModelReply, TextDelta, TokenCounter, ToolCall, Usage
from ..tasks import Metered, RunInterrupted, TaskContext
from .context import ContextWindow
from .limits import LOOP_REPEATS, LimitReached, RunLimits
from .result import AgentResult, StopReason, model_call_failed
from .summary import Compaction, ask_summary, split_for_compact, summary_message
from .spec import AgentSpec
from .tools import ToolCallContext, dispatch_tool, validate_arguments
from .toolset import DELEGATE_SCHEMA, FINAL_ANSWER, Toolset, build_toolset

if TYPE_CHECKING:
    from .service import AgentService

__all__ = ["AgentLoop", "LOOP_REPEATS", "SKIPPED_NOTE"]

log = logging.getLogger(__name__)

SKIPPED_NOTE = ("[no result: this tool call was interrupted and a person skipped it with `wippy tasks resume "
                "--skip`, so it may or may not have taken effect; check before relying on it or calling it again]")
_CONTROL = (RunInterrupted, TaskCancelled, LeaseLost, asyncio.CancelledError)


class _Unjournaled(BaseException):
    """Carries a model failure past the step's journal write (a BaseException: ``step`` records only
    Exceptions), so the failed call leaves no row and a resumed task simply makes it again."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(str(error))
        self.error = error


class AgentLoop:
    """One run of an agent task; ``await AgentLoop(service, ctx).run()`` returns the result as JSON data."""

    def __init__(self, service: "AgentService", ctx: TaskContext) -> None:
        self.service = service
        self.app = service.app
        self.ctx = ctx
        self.task = ctx.task
        self.agent_id = self.task.target
        inp = self.task.input if isinstance(self.task.input, dict) else {"prompt": str(self.task.input or "")}
        self.prompt = str(inp.get("prompt") or "")
        self.variables = dict(inp.get("variables") or {})
        # A console session's `/model ID`: this run talks to another llm.model entry than the agent's own.
        self.model_override = str(inp.get("model") or "") or None
        # A conversation (the console's session) continues from its earlier messages.
        self.history = [Message.from_dict(m) for m in inp.get("history") or ()]
        # a compaction task (`AgentService.compact`): summarise the history but its last N turns
        self.compact: int | None = int(inp.get("keep_turns") or 1) if inp.get("compact") else None
        self.limits = RunLimits(max_turns=1)  # replaced in run() once the spec is read
        self._snap: Any = None
        self._spec: AgentSpec | None = None
        self._toolset: Toolset | None = None
        self._window: ContextWindow | None = None
        self.actor: Any = None

    # -- the loop ------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        self._refresh()
        self.limits = RunLimits(max_turns=self.spec.max_turns, budget=self.spec.budget)
        if self.compact is not None:
            return await self._compact(self.compact)
        last_text = ""
        while True:
            self._refresh()
            self.limits.max_turns, self.limits.budget = self.spec.max_turns, self.spec.budget
            refused = await self._summarise_if_needed() or self._check_before_call()
            if refused:
                return self._stop(refused.reason, last_text, refused.detail)
            reply = await self._model_turn()
            last_text = reply.text or last_text
            self.window.add(reply.to_message())
            over = self.limits.after_call(reply)
            if over:
                return self._stop("budget", reply.text or last_text, over.detail)
            if not reply.tool_calls:
                if self.spec.tool_choice != "required":
                    return self._stop("final", reply.text, "the model gave its final answer")
                self.window.add(Message.user(
                    "A tool call is required: answer only by calling one of your tools; "
                    f"call {FINAL_ANSWER.name} with the answer when you are done."))
                continue
            final = next((c for c in reply.tool_calls if c.name == FINAL_ANSWER.name and not c.parse_error
                          and self.spec.tool_choice == "required"), None)
            if final is not None and isinstance(final.arguments.get("answer"), str):
                return self._stop("final", final.arguments["answer"], f"the model called {FINAL_ANSWER.name}")
            looped = self.limits.repeated(reply.tool_calls)
            if looped:
                return self._stop("loop", last_text, looped.detail)
            outcomes = await self._run_calls(reply.tool_calls)
            for call, outcome in zip(reply.tool_calls, outcomes):
                self.window.add(Message.tool(call.id, _content(outcome), name=call.name))

    @property
    def turns(self) -> int:
        return self.limits.turns

    @property
    def usage(self) -> Usage:
        return self.limits.usage

    def _check_before_call(self) -> LimitReached | None:
        """max_turns, and the budget against the next call's worst case, before it is sent."""
        cfg, _ = self.service.model(self.spec, self._snap)
        toolset = self._toolset
        assert toolset is not None
        win = self.window
        # the context builder trims the prompt to what the window leaves for it
        prompt = min(win.tokens + toolset.tokens, max(0, win.window - win.reserve_output))
        return self.limits.before_call(prompt_tokens=prompt, max_output_tokens=cfg.max_output_tokens, cfg=cfg)

    @property
    def spec(self) -> AgentSpec:
        assert self._spec is not None
        return self._spec

    @property
    def window(self) -> ContextWindow:
        assert self._window is not None
        return self._window

    def _refresh(self) -> None:
        """Re-read agent, model, prompt and tools when the registry moved (cheap when it did not)."""
        snap = self.app.registry.snapshot()
        if snap is self._snap:
            return
        self._snap = snap
        spec = self.service.spec(self.agent_id, snap)
        if self.model_override and self.model_override != spec.model:
            spec = dataclasses.replace(spec, model=self.model_override)
        cfg, _ = self.service.model(spec, snap)
        if self._window is None:
            self.actor = self.service.actor_for(spec, self.task)
            counter = TokenCounter(cfg.model)
            self._window = ContextWindow(counter, window=cfg.context_window, reserve_output=spec.max_output_tokens
                                         or cfg.max_output_tokens, max_tool_result_tokens=spec.max_tool_result_tokens)
            for message in self.history:
                self._window.add(message)
            self._window.add(Message.user(self.prompt))
        self._window.window = cfg.context_window
        self._window.set_system(spec.system_prompt(snap, self.variables))
        if self._toolset is None or spec is not self._spec or self._toolset.version != snap.version:
            self._toolset = build_toolset(snap, spec, self._window.counter)
        self._spec = spec

    # -- summaries (context strategy: summarise, and /compact) ----------------
    async def _summarise_if_needed(self) -> LimitReached | None:
        """With ``context: {strategy: summarise}``: replace the oldest turns by a summary when the
        conversation outgrows the window (a journaled model call); dropping stays the fallback."""
        toolset = self._toolset
        assert toolset is not None
        if self.spec.context_strategy != "summarise":
            return None
        over = self.window.overflow(toolset.tokens)
        if not over:
            return None
        # a quarter of the room more than needed, so the next turns do not summarise again at once
        old = self.window.oldest(over + self.window.budget(toolset.tokens) // 4)
        if not old:
            return None
        reply = await self._summary_step(old, self.window.summary)
        self.window.summarise(len(old), reply.text)
        return self.limits.after_call(reply)

    async def _summary_step(self, old: list[Message], previous: str) -> ModelReply:
        spec, snap = self.spec, self._snap

        async def call() -> Metered:
            cfg, provider = self.service.model(spec, snap)
            try:
                reply = await ask_summary(provider, cfg, old, previous=previous)
            except ProviderError as exc:
                raise _Unjournaled(exc) from exc
            if self.service.listened(self.task.id):
                self.service.emit(self.task.id, {"type": "summary", "text": reply.text, "replaced": len(old)})
            return Metered(value={**reply.to_dict(), "summary_of": len(old)}, tokens=reply.usage.total_tokens,
                           cost_usd=reply.usage.cost_usd)

        try:
            return ModelReply.from_dict(await self.ctx.step("model", call, idempotent=True))
        except _Unjournaled as failed:
            raise model_call_failed(failed.error, self.task.id) from None

    async def _compact(self, keep_turns: int) -> dict[str, Any]:
        old, kept = split_for_compact(self.history, keep_turns)
        if not old:
            return Compaction(summary="", history=[m.to_dict() for m in self.history], task_id=self.task.id).to_dict()
        reply = await self._summary_step(old, "")
        history = [summary_message(reply.text, len(old)).to_dict(), *(m.to_dict() for m in kept)]
        return Compaction(summary=reply.text, history=history, replaced=len(old), usage=reply.usage,
                          task_id=self.task.id).to_dict()

    async def _model_turn(self) -> ModelReply:
        spec, toolset, snap = self.spec, self._toolset, self._snap
        assert toolset is not None

        async def call() -> Metered:
            cfg, provider = self.service.model(spec, snap)
            messages = self.window.messages(toolset.tokens)
            listened = self.service.listened(self.task.id)
            reply = None
            try:
                async for event in provider.stream(messages, tools=toolset.specs, model_cfg=cfg):
                    if isinstance(event, Done):
                        reply = event.reply
                    elif isinstance(event, TextDelta) and listened:
                        self.service.emit(self.task.id, {"type": "text", "text": event.text})
            except ProviderError as exc:
                raise _Unjournaled(exc) from exc
            assert reply is not None, "a provider stream always ends with Done"
            data = reply.to_dict()
            if listened:
                self.service.emit(self.task.id, {"type": "reply", "reply": data})
            # the journal row carries the call's tokens and cost (`wippy tasks show` sums them)
            return Metered(value=data, tokens=reply.usage.total_tokens, cost_usd=reply.usage.cost_usd)

        # A model call may safely run again after a crash: one journal write, no 'started' row.
        # A failed call (cut-short stream, retries used up, refused) is no outcome to replay: it is not
        # journaled, the task fails with the error, and `wippy tasks resume` makes the call again.
        try:
            reply = ModelReply.from_dict(await self.ctx.step("model", call, idempotent=True))
        except _Unjournaled as failed:
            raise model_call_failed(failed.error, self.task.id) from None
        return reply

    # -- ending ----------------------------------------------------------------
    def _stop(self, reason: StopReason, answer: str, detail: str) -> dict[str, Any]:
        return AgentResult(answer=answer, stop_reason=reason, agent=self.agent_id, detail=detail, turns=self.turns,
                           usage=self.usage, task_id=self.task.id).to_dict()

    # -- tool calls ----------------------------------------------------------
    async def _run_calls(self, calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
        toolset, turn = self._toolset, self.turns
        assert toolset is not None
        if len(calls) == 1:
            return [await self._call(turn, calls[0], toolset)]
        try:
            # Steps take their seq when they start; tasks start in creation order, so the
            # seqs follow the model's order on every run.
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._call(turn, c, toolset)) for c in calls]
        except BaseExceptionGroup as eg:
            raise _first(eg) from None
        return [t.result() for t in tasks]

    def _call(self, turn: int, call: ToolCall, toolset: Toolset) -> Any:
        if call.name in toolset.delegates:
            name, idempotent = f"delegate:{call.name}", True  # the child task id makes a retry safe
        else:
            entry = toolset.entries.get(call.name)
            name, idempotent = f"tool:{call.name}", bool(entry is None or entry.data.get("idempotent"))
        return self.ctx.step(name, lambda: self._execute(turn, call, toolset), idempotent=idempotent)

    async def _execute(self, turn: int, call: ToolCall, toolset: Toolset) -> dict[str, Any]:
        # Live events for a console: the call as it starts (with a delegate's child task id) and its outcome.
        if not self.service.listened(self.task.id):  # nobody watches: skip building the events
            return await self._outcome(turn, call, toolset)
        child = f"{self.task.id}/{turn}.{call.id}" if call.name in toolset.delegates else None
        self.service.emit(self.task.id, {"type": "tool_start", "id": call.id, "name": call.name,
                                         "arguments": call.arguments, "delegate_task": child})
        started = time.monotonic()
        outcome = await self._outcome(turn, call, toolset)
        self.service.emit(self.task.id, {"type": "tool_end", "id": call.id, "name": call.name, **outcome,
                                         "seconds": time.monotonic() - started})
        return outcome

    async def _outcome(self, turn: int, call: ToolCall, toolset: Toolset) -> dict[str, Any]:
        try:
            if call.parse_error:
                raise ToolError(f"{call.parse_error}. Send the arguments as one JSON object that matches the "
                                "tool's input_schema.")
            delegate = toolset.delegates.get(call.name)
            if delegate is not None:
                validate_arguments(call.name, DELEGATE_SCHEMA, call.arguments)
                return {"result": await self.service.delegate(self, turn, call, delegate)}
            entry = toolset.entries.get(call.name)
            if entry is None:
                raise ToolError(f"there is no tool named {call.name!r}; the tools you can call are: "
                                f"{', '.join(toolset.names()) or '(none)'}")
            ctx = ToolCallContext(app=self.app, actor=self.actor, task_id=self.task.id, agent_id=self.agent_id,
                                  call_id=call.id)
            value = await dispatch_tool(self.app, entry, call.arguments, ctx)
            problem = _not_json(value)
            if problem:
                raise ToolError(f"tool {call.name!r} returned data that is not JSON: {problem}")
            return {"result": value}
        except ToolError as exc:
            # debug only: the failure goes back to the model, and a watching console prints its tool_end event
            log.debug("task %s: tool call %s failed: %s", self.task.id, call.name, exc)
            return {"error": str(exc)}


def _not_json(value: Any, depth: int = 0) -> str:
    """Why ``value`` cannot be journaled as JSON ("" if it can); cheaper than serialising it."""
    if value is None or isinstance(value, (str, bool, int)):
        return ""
    if isinstance(value, float):
        return "" if value == value and value not in (float("inf"), float("-inf")) else f"{value!r} is not a JSON number"
    if depth > 64:
        return "nested more than 64 levels deep"
    if isinstance(value, (list, tuple)):
        return next((p for p in (_not_json(v, depth + 1) for v in value) if p), "")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"object key {key!r} is not a string"
            problem = _not_json(item, depth + 1)
            if problem:
                return problem
        return ""
    return f"a {type(value).__name__} is not JSON data"


def _content(outcome: Any) -> str:
    """The text the model reads for a tool's outcome."""
    if outcome is None:  # only `wippy tasks resume --skip` records a tool step without an outcome
        return SKIPPED_NOTE
    if isinstance(outcome, dict) and "error" in outcome:
        return f"ERROR: {outcome['error']}"
    value = outcome.get("result") if isinstance(outcome, dict) else outcome
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _first(eg: BaseExceptionGroup) -> BaseException:
    """The exception that should end the turn: an interruption before any error."""
    flat: list[BaseException] = []
    stack: list[BaseException] = [eg]
    while stack:
        exc = stack.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            stack[:0] = list(exc.exceptions)
        else:
            flat.append(exc)
    for exc in flat:
        if isinstance(exc, _CONTROL):
            return exc
    return next((e for e in flat if isinstance(e, WippyError)), flat[0])
