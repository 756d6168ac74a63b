"""``App``: the composition root — one running node of an app, every layer opened in one written order.

No layer imports this module; each offers a plain constructor and ``App.open``
calls them here, top to bottom, keeping each result in a typed attribute::

    store      = open_store(url)                          store/
    node       = Node(name)                               runtime/
    registry   = Registry(store, builtins=...)            registry/  (+ the Lua compile check)
    security   = security.install(registry, store)        security/  (the registry write guard)
    lua        = LuaHost(services=registry_services(      lua/       (every guarded op meets
                     registry, **security.lua_seams(..)))             security's LuaGuard)
    tasks      = TaskEngine(store, node=node, ...)        tasks/
    processes  = LuaProcesses(node, lua, registry)        lua/       (process.host, process.service)
    workflows  = workflows.install(registry, tasks, lua)  tasks/     (workflow.lua)
    agents     = agents.install(app)                      agents/    (agent runs, llm/agent modules)
    mcp        = mcp.install(app); await mcp.start()      mcp/       (mcp.server entries' tools)
    sessions   = session.install(app, agents)             agents/    (conversations)
    tracing    = observability.install(app)               observability/ (wraps the seams above when the
                                                                       OTEL_* variables turn it on)

Security is not optional and is installed before anything can write to the
registry or run Lua; a guard that is missing is a start-up error, never a
silent skip, whatever the import order.

>>> async with await App.open("examples/hello") as app:     # doctest: +SKIP
...     print(await app.call("app.tools:word_count", {"text": "a b"}))

``App.open`` raises ``ConfigError`` for bad settings, ``StoreError`` when the
store cannot be opened and ``RegistryError`` when the app's files are
invalid (nothing is started then).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Awaitable, Callable

from . import security as security_layer
from .agents import AgentService, ToolCallContext, builtin_entries, dispatch_tool
from .agents.tools import tool_runner
from .agents import install as install_agents
from .agents.session import Sessions
from .agents.session import install as install_sessions
from .errors import ConfigError, EntryNotFound, UsageError
from .lua import LuaHost, compile_check, registry_services
from .lua.processes import LuaProcesses
from .mcp import McpClients
from .mcp import install as install_mcp
from .observability import install as install_tracing
from .registry import AppSettings, Entry, Registry, kinds
from .registry.validation import code_validator
from .runtime import Node
from .security import Security
from .store import Store, open_store
from .tasks import TaskEngine
from .tasks.nodes import host_name, this_process
from .tasks.settings import engine_options
from .tasks.workflow import Workflows
from .tasks.workflow import install as install_workflows

__all__ = ["App"]

log = logging.getLogger(__name__)


class App:
    """A node of an app; each layer is a typed attribute, opened by ``App.open`` in the order above."""

    settings: AppSettings
    node: Node
    store: Store
    registry: Registry
    security: Security
    lua: LuaHost
    tasks: TaskEngine
    processes: LuaProcesses
    workflows: Workflows
    agents: AgentService
    mcp: McpClients
    sessions: Sessions
    tracing: Any  # observability.tracing.Tracing, or TracingOff (``.enabled`` says which)

    def __init__(self, settings: AppSettings, node: Node, store: Store) -> None:
        self.settings = settings
        self.node = node
        self.store = store
        self._closers: list[Callable[[], Awaitable[None]]] = []

    @classmethod
    async def open(
        cls,
        path: str | Path | None = None,
        *,
        store: str | None = None,
        node: str | None = None,
        settings: AppSettings | None = None,
        watch: bool = False,
        on_watch_error: Callable[[Exception], Any] | None = None,
        follow: bool = False,
        recover: bool = True,
        lease_seconds: float | None = None,
        heartbeat_seconds: float | None = None,
        claim_interval: float | None = None,
        publish: bool | None = True,
    ) -> "App":
        """Open the app at ``path`` (a directory or a single YAML file).

        ``publish``: write the app's files as a new registry version where they
        differ from the store's (a program opening its app deploys it).
        ``None`` is the command-line rule of SPEC §3: on SQLite yes; on a
        shared PostgreSQL store no — only a deploy (``wippy run``, ``wippy
        registry push``) publishes, other commands run on the store's
        version and warn when their local files differ.

        Lease settings not given here come from the ``tasks:`` block of the
        settings (``wippy_agents.tasks.settings``), else 15 s / 5 s.
        """
        settings = settings or AppSettings.load(path, store=store, node=node)
        options = engine_options(settings.extra, where=str(settings.app_file or settings.root / "wippy.yaml"),
                                 lease_seconds=lease_seconds, heartbeat_seconds=heartbeat_seconds,
                                 claim_interval=claim_interval)
        app = cls(settings, Node(settings.node), await open_store(settings.store))
        try:
            shared = settings.store.startswith(("postgresql:", "postgres:"))
            await app._open_layers(options.as_kwargs(), publish=not shared if publish is None else publish)
            if follow:
                app.registry.follow()
            if watch:
                app.registry.watch(settings, on_error=on_watch_error)  # the watcher logs each problem once
            if recover:
                await app.tasks.recover()
            return app
        except BaseException:
            await app.close()
            raise

    async def _open_layers(self, engine_kwargs: dict[str, Any], publish: bool) -> None:
        """Each layer's constructor, in the order of the module docstring; each closes with ``close``."""
        self.registry = Registry(self.store, author_default="cli", builtins=builtin_entries())
        self._closers.append(self.registry.close)
        self.registry.add_validator(code_validator(compile_check))
        self.security = security_layer.install(self.registry, self.store)
        services = registry_services(self.registry, call_function=self._call_entry,
                                     **security_layer.lua_seams(self.security))
        self.lua = LuaHost(node=self.node, registry=self.registry, services=services)
        if services.guard is None:  # cannot happen through lua_seams; a refactor must not make it silently so
            raise ConfigError("the Lua host has no security guard; refusing to open the node")
        self.registry.node, self.registry.host = self.settings.node, host_name()
        await self.registry.load(self.settings, publish=publish)
        self.tasks = TaskEngine(self.store, node_name=self.settings.node, node=self.node,
                                max_tasks=self.settings.max_tasks,
                                identity=this_process(self.settings.node, stable=self.settings.node_stable),
                                **engine_kwargs)
        self._closers.append(self.tasks.close)
        await self.tasks.register()  # NameTaken while another live process holds this node name
        self.processes = LuaProcesses(self.node, self.lua, registry=self.registry)
        self._closers.append(self.processes.close)
        await self.processes.open()
        self.workflows = install_workflows(self.registry, self.tasks, self.lua)
        self.agents = install_agents(self)
        self._closers.append(self.agents.close)
        self.mcp = install_mcp(self)
        self._closers.append(self.mcp.close)
        await self.mcp.start()
        self.sessions = install_sessions(self, self.agents)
        self.tracing = install_tracing(self)

    async def _call_entry(self, entry_id: str, args: Any, *, actor: Any = None) -> Any:
        """``funcs.call`` of a non-Lua entry: a workflow runs as a task, a Python tool through the
        tool dispatcher (validated, checked). Which one is the kind's ``call_mode``."""
        entry = self.registry.get(entry_id)
        mode = kinds.call_mode(entry.kind) if entry is not None else None
        if mode == "workflow":
            return await self.workflows.run(entry_id, args)
        if entry is not None and (mode == "python" or tool_runner(mode) is not None):  # e.g. an MCP tool
            return await dispatch_tool(self, entry, args, ToolCallContext(app=self, actor=actor))
        raise EntryNotFound(f"funcs.call: {entry_id!r} is not a callable function entry", id=entry_id)

    def add_closer(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Run ``closer()`` at ``close``, before the layers stop (last added runs first)."""
        self._closers.append(closer)

    def entry(self, entry_id: str) -> Entry:
        found = self.registry.get(entry_id)
        if found is None:
            raise EntryNotFound(f"entry {entry_id!r} not found; `wippy registry list` shows what exists", id=entry_id)
        return found

    async def call(self, entry_id: str, args: Any = None, *, actor: Any = None) -> Any:
        """Call a function entry (``function.lua``) and return its first result."""
        entry = self.entry(entry_id)
        if kinds.call_mode(entry.kind) != "lua":
            raise UsageError(f"{entry_id!r} is a {entry.kind!r} entry, not a function (kind function.lua)")
        return await self.lua.call_function(entry, args, actor=actor)

    async def close(self) -> None:
        """Stop everything opened, in reverse order (then processes and the store). Idempotent."""
        tasks = getattr(self, "tasks", None)
        if tasks is not None:
            tasks.interrupt()  # first: a step cut short by the layers closing is not the task's error
        closers, self._closers = self._closers, []
        for closer in reversed(closers):
            try:
                await closer()
            except Exception:  # noqa: BLE001 - one failing closer must not leak the rest
                log.exception("closer failed during shutdown")
        await self.node.stop()
        await self.store.close()

    async def __aenter__(self) -> "App":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
