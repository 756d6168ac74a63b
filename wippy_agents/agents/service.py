"""``AgentService``: agents on one App — start and run them, their models, their streams.

Installed by the agents layer when an App opens, as ``app.agents``::

    result = await app.agents.run("app.agents:assistant", "count words in: a b c")
    print(result.answer, result.stop_reason)

Runs are durable tasks of kind ``agent`` on ``app.tasks`` (each a process on
``app.node``); ``run`` with a used ``task_id`` resumes or returns that task
instead of starting over. Providers are made once per ``llm.model`` entry
(again when the entry changes) and closed with the app.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ConfigError, EntryNotFound, TaskCancelled, ToolError, UsageError, WippyError
from ..llm import ModelConfig, Provider, ToolCall, Usage, make_provider
from ..registry import Entry, Snapshot
from ..store.base import TaskRecord
from ..tasks import TaskContext
from .layers import NodeLayers
from .result import AgentResult
from .spec import AgentSpec, Delegate

if TYPE_CHECKING:
    from .summary import Compaction

__all__ = ["AgentService", "AGENT_TASK_KIND"]

log = logging.getLogger(__name__)

AGENT_TASK_KIND = "agent"
MODEL_STEP = "model"  # the journal step of one model call (agents/loop.py)
Listener = Callable[[dict[str, Any]], None]


class AgentService:
    """Agents of one app. ``start``/``run``/``result`` block only on the store and the run itself."""

    def __init__(self, app: NodeLayers) -> None:
        self.app = app
        self._specs: dict[str, tuple[Entry, AgentSpec]] = {}
        self._models: dict[str, tuple[Entry, ModelConfig, Provider]] = {}
        self._overrides: dict[str, Provider] = {}
        self._listeners: dict[str, list[Listener]] = {}

    # -- definitions ---------------------------------------------------------
    def spec(self, agent_id: str, snapshot: Snapshot | None = None) -> AgentSpec:
        """The agent's spec at ``snapshot`` (the live one by default); raises ``EntryNotFound``/``ConfigError``."""
        snap = snapshot or self.app.registry.snapshot()
        entry = snap.get(agent_id)
        if entry is None:
            raise EntryNotFound(f"agent {agent_id!r} not found; `wippy registry list --kind agent` shows the agents",
                                id=agent_id)
        hit = self._specs.get(agent_id)
        if hit is not None and hit[0] is entry:
            return hit[1]
        spec = AgentSpec.from_entry(entry)
        self._specs[agent_id] = (entry, spec)
        return spec

    def model(self, spec: AgentSpec, snapshot: Snapshot | None = None) -> tuple[ModelConfig, Provider]:
        """The config (with the agent's overrides) and provider of the agent's model.

        Raises ``EntryNotFound``, ``ConfigError``, ``MissingApiKey`` (one line naming the env var).
        """
        if not spec.model:
            raise ConfigError(f"{spec.where}: agent {spec.id!r} has no model", id=spec.id)
        snap = snapshot or self.app.registry.snapshot()
        entry = snap.get(spec.model)
        if entry is None or entry.kind != "llm.model":
            raise EntryNotFound(f"agent {spec.id!r}: model {spec.model!r} is not an llm.model entry", id=spec.model)
        hit = self._models.get(spec.model)
        if hit is None or hit[0] is not entry:
            cfg = ModelConfig.from_entry(entry)
            provider = self._overrides.get(spec.model) or make_provider(cfg)
            hit = (entry, cfg, provider)
            self._models[spec.model] = hit
        cfg = hit[1]
        changes = {k: v for k, v in (("temperature", spec.temperature), ("max_output_tokens", spec.max_output_tokens))
                   if v is not None and getattr(cfg, k) != v}
        return (dataclasses.replace(cfg, **changes) if changes else cfg), hit[2]

    def use_provider(self, model_id: str, provider: Provider) -> None:
        """Serve ``model_id`` with ``provider`` (tests, benchmarks, embedding apps)."""
        self._overrides[model_id] = provider
        self._models.pop(model_id, None)

    def provider_for(self, model_id: str) -> Provider | None:
        """The provider made for ``model_id`` so far (e.g. a scripted model, to count its calls)."""
        hit = self._models.get(model_id)
        return hit[2] if hit else self._overrides.get(model_id)

    def actor_for(self, spec: AgentSpec, task: TaskRecord) -> Any:
        """The security actor of a run: the agent with its policies, for this task."""
        return self.app.security.agent_actor(agent_id=spec.id, policies=list(spec.policies), task_id=task.id)

    def check_ready(self, agent_id: str) -> AgentSpec:
        """Fail before starting a run that cannot work: missing agent/model/prompt, missing API key."""
        snap = self.app.registry.snapshot()
        spec = self.spec(agent_id, snap)
        if not spec.is_lua:
            self.model(spec, snap)
            if spec.prompt and snap.get(spec.prompt) is None:
                raise EntryNotFound(f"agent {agent_id!r}: prompt {spec.prompt!r} does not exist", id=spec.prompt)
        return spec

    # -- runs ----------------------------------------------------------------
    async def start(self, agent_id: str, prompt: str, *, task_id: str | None = None,
                    variables: dict[str, Any] | None = None, parent_id: str | None = None) -> TaskRecord:
        """Start (or, for a used ``task_id``, find) a run; raises what ``check_ready`` raises."""
        self.check_ready(agent_id)
        return await self.app.tasks.start(
            AGENT_TASK_KIND, agent_id, {"prompt": prompt, "variables": variables or {}},
            task_id=task_id or uuid.uuid4().hex, parent_id=parent_id, registry_version=self.app.registry.version)

    async def result(self, task_id: str, *, timeout: float | None = None) -> AgentResult:
        """Wait for a run to end; a cancelled run is a result with stop reason ``cancelled``.

        Raises the run's error if it failed (``TaskStranded`` if it needs a person).
        """
        try:
            data = await self.app.tasks.wait(task_id, timeout=timeout)
        except TaskCancelled as exc:
            task = await self.app.tasks.get(task_id)
            return AgentResult(answer="", stop_reason="cancelled", agent=task.target, detail=str(exc), task_id=task_id)
        return AgentResult.from_dict(data)

    async def run(self, agent_id: str, prompt: str, *, task_id: str | None = None,
                  variables: dict[str, Any] | None = None, timeout: float | None = None,
                  on_event: Listener | None = None) -> AgentResult:
        """Start a run (or pick up ``task_id``) and wait for its result; ``on_event`` gets streamed
        ``{"type": "text", "text"}`` pieces and ``{"type": "reply", "reply"}`` per live model call."""
        task_id = task_id or uuid.uuid4().hex
        unsubscribe = self.subscribe(task_id, on_event) if on_event else None
        try:
            task = await self.start(agent_id, prompt, task_id=task_id, variables=variables)
            if task.kind != AGENT_TASK_KIND or task.target != agent_id:
                raise UsageError(f"task {task_id!r} runs {task.target!r} (kind {task.kind}), not agent {agent_id!r}; "
                                 "use another --task-id", task_id=task_id)
            if task.status == "stranded":
                raise WippyError(f"task {task_id!r} is stranded; `wippy tasks resume {task_id} --retry|--skip`")
            if task.status in ("pending", "running") and task_id not in self.app.tasks.running():
                await self.app.tasks.adopt(task_id)  # queued or orphaned: run it here unless a live node has it
            return await self.result(task_id, timeout=timeout)
        finally:
            if unsubscribe:
                unsubscribe()

    async def compact(self, agent_id: str, history: list[dict[str, Any]], *, keep_turns: int = 1,
                      task_id: str | None = None, parent_id: str | None = None,
                      extra_input: dict[str, Any] | None = None) -> "Compaction":
        """Summarise a conversation's ``history`` (message dicts) but its last ``keep_turns`` turns.

        Runs as an agent task of its own (``task_id``, child of ``parent_id``) whose one journaled
        model step writes the summary; returns a ``Compaction`` whose ``history`` (a summary note, then
        the kept turns) is what the conversation continues with. ``extra_input`` adds fields to the
        task's input, as a session gives its turn tasks. Raises ``UsageError`` for a Lua agent and
        the model's ``ProviderError`` when the call failed (the task can then be resumed).
        """
        from .summary import Compaction

        spec = self.check_ready(agent_id)
        if spec.is_lua:
            raise UsageError(f"agent {agent_id!r} is a Lua agent; it keeps its own context, there is nothing "
                             "to compact")
        task_id = task_id or uuid.uuid4().hex
        await self.app.tasks.start(
            AGENT_TASK_KIND, agent_id, {**(extra_input or {}), "prompt": "", "history": list(history),
                                        "compact": True, "keep_turns": keep_turns},
            task_id=task_id, parent_id=parent_id, registry_version=self.app.registry.version)
        return Compaction.from_dict(await self.app.tasks.wait(task_id))

    async def delegate(self, loop: Any, turn: int, call: ToolCall, delegate: Delegate) -> str:
        """Run ``delegate`` as a child task of ``loop``'s task and return its answer (``ToolError`` if it failed)."""
        child_id = f"{loop.task.id}/{turn}.{call.id}"
        try:
            await self.start(delegate.id, call.arguments["task"], task_id=child_id, parent_id=loop.task.id)
            result = await self.child_result(loop.task.id, child_id)
        except (ToolError, TaskCancelled):
            raise
        except WippyError as exc:
            raise ToolError(f"the agent {delegate.id!r} ({delegate.name}) failed: {exc}") from None
        if result.stop_reason != "final":
            return f"{result.answer}\n[the agent {delegate.name} stopped early: {result.detail}]".strip()
        return result.answer

    async def child_result(self, parent_id: str, child_id: str) -> AgentResult:
        """Wait for a child run; if the parent ends first (it was cancelled), cancel the child too
        and raise ``TaskCancelled`` so the parent stops at once instead of waiting for its child."""
        child = asyncio.ensure_future(self.result(child_id))
        parent = asyncio.ensure_future(self.app.tasks.wait(parent_id))
        try:
            await asyncio.wait({child, parent}, return_when=asyncio.FIRST_COMPLETED)
            if child.done():
                return child.result()
            why = parent.exception() if not parent.cancelled() else None
            try:
                await self.app.tasks.cancel(child_id, reason=f"its parent task {parent_id!r} ended")
            except UsageError:
                pass  # the child ended meanwhile
            if isinstance(why, TaskCancelled):
                raise why
            raise TaskCancelled(f"task {parent_id!r} ended while its child {child_id!r} ran", task_id=parent_id)
        finally:
            pending = [f for f in (child, parent) if not f.done()]
            for f in pending:
                f.cancel()
            if pending:
                await asyncio.wait(pending)

    async def usage(self, task_id: str, *, depth: int = 5) -> tuple[Usage, int]:
        """What a run cost: the usage of its model steps and of its delegates' runs (``depth``
        levels down), and its own number of model calls — read from the journal, so a
        cancelled or crashed run is counted too. Raises ``JournalCorrupt``/``StoreError``."""
        usage, calls = Usage(), 0
        for step in await self.app.tasks.journal(task_id):
            if step.name == MODEL_STEP:
                calls += 1
                if step.status == "ok" and isinstance(step.result, dict):
                    usage = usage + Usage.from_dict(step.result.get("usage") or {})
        if depth > 0:
            for child in await self.app.tasks.children(task_id):
                if child.kind == AGENT_TASK_KIND:
                    usage = usage + (await self.usage(child.id, depth=depth - 1))[0]
        return usage, calls

    async def runner(self, ctx: TaskContext) -> Any:
        """The task runner of kind ``agent``: a Lua agent runs its own method, others the turn loop."""
        spec = self.spec(ctx.task.target)
        if spec.is_lua:
            from .lua_agent import run_lua_agent

            return await run_lua_agent(self, ctx, spec)
        from .loop import AgentLoop

        return await AgentLoop(self, ctx).run()

    # -- streaming -------------------------------------------------------------
    def subscribe(self, task_id: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for the live events of ``task_id``; returns the unsubscribe function."""
        self._listeners.setdefault(task_id, []).append(listener)

        def unsubscribe() -> None:
            found = self._listeners.get(task_id)
            if found and listener in found:
                found.remove(listener)
                if not found:
                    del self._listeners[task_id]

        return unsubscribe

    def listened(self, task_id: str) -> bool:
        """Whether anyone listens to ``task_id`` (so a run can skip building events)."""
        return task_id in self._listeners

    def emit(self, task_id: str, event: dict[str, Any]) -> None:
        for listener in self._listeners.get(task_id, ()):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a broken listener must not break the run
                log.exception("agent event listener failed for task %s", task_id)

    async def close(self) -> None:
        """Close every provider made here."""
        seen: set[int] = set()
        for _, _, provider in list(self._models.values()):
            if id(provider) not in seen:
                seen.add(id(provider))
                await provider.aclose()
        self._models.clear()
