"""``Tracing``: OpenTelemetry spans around the node's existing seams (imported only when tracing is on).

Nothing in the task engine, the agent loop or the providers knows about
tracing; ``Tracing.install`` wraps, per App instance:

* each task kind's runner -> a ``task`` span (``invoke_agent`` for agents);
  a child task's span sits under the step of its parent that started it;
* the run's ``ctx.step`` -> a ``step`` span (``wippy.step.name``, ``.seq``,
  ``.replayed``); a replayed step keeps the times it was journaled with, so
  a resumed task is marked, not re-timed; a ``model`` step opens the next
  agent ``turn`` span, ``tool:``/``delegate:`` steps hold an ``execute_tool``
  span (``gen_ai.tool.name``, ``gen_ai.tool.call.id``) when they really run;
* the agents' model providers -> a ``chat`` span (GenAI conventions:
  ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
  ``gen_ai.usage.input_tokens``/``output_tokens``, ``gen_ai.response.finish_reasons``);
* Lua's ``funcs.call`` -> a span under whatever step or tool call the Lua code runs in;
* registry changes -> a ``registry.change`` span where the change was applied.

>>> tracing = Tracing.install(app, tracer_provider=provider)     # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, AsyncIterator

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

__all__ = ["Tracing"]

log = logging.getLogger(__name__)

SCOPE = "wippy_agents"
_MAX_IDS = 20


def _ns(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1e9)


class _Run:
    """The spans of one task run: its task span, the open turn, the model's last tool call ids."""

    def __init__(self, tracing: "Tracing", ctx: Any, span: Any) -> None:
        self.tracing = tracing
        self.ctx = ctx
        self.span = span
        self.task = asyncio.current_task()
        self.turn = 0
        self.turn_span: Any = None
        self.turn_token: Any = None
        self.call_ids: dict[str, list[str]] = {}

    def next_turn(self) -> None:
        if asyncio.current_task() is not self.task:
            return  # a model call from another task (a Lua agent's helper): no turn bookkeeping
        self.end_turn()
        self.turn += 1
        self.turn_span = self.tracing.tracer.start_span(
            f"turn {self.turn}", context=trace.set_span_in_context(self.span),
            attributes={"wippy.turn": self.turn, "wippy.task.id": self.ctx.task.id})
        self.turn_token = otel_context.attach(trace.set_span_in_context(self.turn_span))

    def end_turn(self) -> None:
        if self.turn_token is not None and asyncio.current_task() is self.task:
            otel_context.detach(self.turn_token)
        self.turn_token = None
        if self.turn_span is not None:
            self.turn_span.end()
            self.turn_span = None

    def remember(self, reply: Any) -> None:
        self.call_ids = {}
        for call in (reply or {}).get("tool_calls") or () if isinstance(reply, dict) else ():
            if isinstance(call, dict):
                self.call_ids.setdefault(str(call.get("name")), []).append(str(call.get("id")))

    def call_id(self, tool: str) -> str | None:
        ids = self.call_ids.get(tool)
        return ids.pop(0) if ids else None


class Tracing:
    """The spans of one App; ``close`` flushes (and shuts down a provider it made)."""

    enabled = True

    def __init__(self, tracer_provider: Any, *, owned: bool) -> None:
        self.provider = tracer_provider
        self.tracer = trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
        self._owned = owned
        self._parents: dict[str, Any] = {}  # task id -> context of its step that is running now
        self._unsubscribe: Any = None

    @classmethod
    def from_environment(cls) -> "Tracing":
        """A provider exporting over OTLP/HTTP as the standard ``OTEL_*`` variables say."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": "wippy"}))
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider, owned=True)

    @classmethod
    def install(cls, app: Any, *, tracer_provider: Any = None) -> "Tracing":
        """Wrap ``app``'s seams; with no ``tracer_provider``, one from the environment."""
        tracing = cls(tracer_provider, owned=False) if tracer_provider is not None else cls.from_environment()
        tracing._wrap_tasks(app.tasks)
        tracing._wrap_models(app.agents)
        tracing._wrap_lua(app.lua)
        tracing._unsubscribe = app.registry.subscribe(tracing._registry_changed)
        app.add_closer(tracing.close)
        return tracing

    # -- tasks and steps --------------------------------------------------------
    def _wrap_tasks(self, engine: Any) -> None:
        for kind, (runner, retry) in list(engine._kinds.items()):
            engine._kinds[kind] = (self._runner(kind, runner), retry)
        register = engine.register_kind

        def register_kind(kind: str, runner: Any, **kw: Any) -> None:
            register(kind, self._runner(kind, runner), **kw)

        engine.register_kind = register_kind

    def _runner(self, kind: str, runner: Any) -> Any:
        async def traced(ctx: Any) -> Any:
            task = ctx.task
            parent = self._parents.get(task.parent_id) if task.parent_id else None
            attrs = {"wippy.task.id": task.id, "wippy.task.kind": task.kind, "wippy.task.target": task.target}
            if task.parent_id:
                attrs["wippy.task.parent_id"] = task.parent_id
            if kind == "agent":
                attrs.update({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": task.target})
            name = f"invoke_agent {task.target}" if kind == "agent" else f"task {kind} {task.target}"
            with self.tracer.start_as_current_span(name, context=parent, attributes=attrs) as span:
                run = _Run(self, ctx, span)
                ctx.step = self._step(run, ctx.step)
                try:
                    return await runner(ctx)
                except BaseException as exc:
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                    raise
                finally:
                    run.end_turn()

        return traced

    def _step(self, run: _Run, inner: Any) -> Any:
        tracer = self.tracer
        ctx = run.ctx

        async def step(name: str, fn: Any, *, idempotent: bool = False, retry: Any = None) -> Any:
            seq = ctx.seq + 1
            try:
                recorded = ctx._journal.recorded(seq, name)
            except Exception:  # noqa: BLE001 - a divergence: the real step raises it below
                recorded = None
            replayed = recorded is not None and recorded.status != "started"
            if name == "model":
                run.next_turn()
            attrs = {"wippy.step.name": name, "wippy.step.seq": seq, "wippy.step.replayed": replayed,
                     "wippy.task.id": ctx.task.id}
            tool = name.partition(":")[2] if name.startswith(("tool:", "delegate:")) else None
            call_id = run.call_id(tool) if tool is not None else None
            if call_id:
                attrs["gen_ai.tool.call.id"] = call_id
            if replayed:
                span = tracer.start_span(f"step {name}", start_time=_ns(recorded.started_at), attributes=attrs)
                try:
                    value = await inner(name, fn, idempotent=idempotent, retry=retry)
                finally:
                    span.end(end_time=_ns(recorded.finished_at or recorded.started_at))
                if name == "model":
                    run.remember(value)
                return value
            with tracer.start_as_current_span(f"step {name}", attributes=attrs) as span:
                self._parents[ctx.task.id] = otel_context.get_current()
                call = fn if tool is None else self._tool_call(fn, tool, call_id, name.startswith("delegate:"),
                                                              ctx.task.id)
                try:
                    value = await inner(name, call, idempotent=idempotent, retry=retry)
                finally:
                    self._parents.pop(ctx.task.id, None)
                if name == "model":
                    run.remember(value)
                return value

        return step

    def _tool_call(self, fn: Any, tool: str, call_id: str | None, delegate: bool, task_id: str) -> Any:
        async def call() -> Any:
            attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
                     "gen_ai.tool.type": "agent" if delegate else "function"}
            if call_id:
                attrs["gen_ai.tool.call.id"] = call_id
            with self.tracer.start_as_current_span(f"execute_tool {tool}", attributes=attrs) as span:
                self._parents[task_id] = otel_context.get_current()  # a child task started here sits under it
                value = fn()
                if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
                    value = await value
                if isinstance(value, dict) and "error" in value:
                    span.set_status(Status(StatusCode.ERROR, str(value["error"])[:500]))
                return value

        return call

    # -- model calls ----------------------------------------------------------------
    def _wrap_models(self, service: Any) -> None:
        inner = service.model
        wrapped: dict[int, Any] = {}

        def model(spec: Any, snapshot: Any = None) -> Any:
            cfg, provider = inner(spec, snapshot)
            traced = wrapped.get(id(provider))
            if traced is None or traced.inner is not provider:
                traced = wrapped[id(provider)] = _TracedProvider(provider, self.tracer)
            return cfg, traced

        service.model = model

    # -- Lua and the registry ---------------------------------------------------------
    def _wrap_lua(self, host: Any) -> None:
        funcs = host.modules.get("funcs")
        if funcs is None or "funcs.call" not in funcs.ops:
            return
        inner = funcs.ops["funcs.call"].fn

        async def call(ctx: Any, entry_id: Any = "", *args: Any) -> Any:
            target = ctx.resolve(entry_id) if isinstance(entry_id, str) and entry_id else entry_id
            with self.tracer.start_as_current_span(f"funcs.call {target}", attributes={
                    "wippy.lua.caller": str(ctx.entry_id), "wippy.lua.target": str(target)}):
                return await inner(ctx, entry_id, *args)

        host.add_module(funcs.replace_ops({"funcs.call": call}))  # same declaration (effect, guard)

    def _registry_changed(self, version: int, changed: list[str]) -> None:
        span = self.tracer.start_span("registry.change", attributes={
            "wippy.registry.version": version, "wippy.registry.changed_count": len(changed),
            "wippy.registry.changed": json.dumps(sorted(changed)[:_MAX_IDS])})
        span.end()

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._owned:
            await asyncio.to_thread(self.provider.shutdown)
        else:
            await asyncio.to_thread(self.provider.force_flush)


class _TracedProvider:
    """A model provider whose ``request``/``stream`` calls are ``chat`` spans (GenAI conventions)."""

    def __init__(self, inner: Any, tracer: Any) -> None:
        self.inner = inner
        self.tracer = tracer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _start(self, model_cfg: Any) -> Any:
        cfg = model_cfg or self.inner.config
        return self.tracer.start_span(f"chat {cfg.model}", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": str(cfg.provider),
            "gen_ai.request.model": str(cfg.model), "wippy.model.entry": str(cfg.id)})

    @staticmethod
    def _finish(span: Any, reply: Any) -> None:
        span.set_attributes({"gen_ai.usage.input_tokens": reply.usage.input_tokens,
                             "gen_ai.usage.output_tokens": reply.usage.output_tokens,
                             "gen_ai.response.finish_reasons": [str(reply.stop_reason)]})
        if reply.model:
            span.set_attribute("gen_ai.response.model", reply.model)

    async def request(self, messages: Any, **kw: Any) -> Any:
        span = self._start(kw.get("model_cfg"))
        try:
            reply = await self.inner.request(messages, **kw)
            self._finish(span, reply)
            return reply
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            span.end()

    async def stream(self, messages: Any, **kw: Any) -> AsyncIterator[Any]:
        from ..llm import Done

        span = self._start(kw.get("model_cfg"))
        try:
            async for event in self.inner.stream(messages, **kw):
                if isinstance(event, Done):
                    self._finish(span, event.reply)
                yield event
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            span.end()

    async def aclose(self) -> None:
        await self.inner.aclose()
