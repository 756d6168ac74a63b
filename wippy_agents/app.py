"""``App``: one running node of an app, with every layer wired together.

The layers stay ignorant of each other below this point; here they meet:
the store opens, the registry loads the app's files (with the Lua compile
check as a validator), the Lua host serves function entries, the task
engine resumes durable work, and (when asked) the watcher hot-reloads files.

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

from .errors import EntryNotFound, UsageError
from .lua import LuaHost, compile_check, registry_services
from .registry import AppSettings, Entry, Registry
from .registry.validation import code_validator
from .runtime import Node
from .store import Store, open_store
from .tasks import TaskEngine
from .tasks.nodes import this_process
from .tasks.settings import engine_options

__all__ = ["App", "on_open"]

log = logging.getLogger(__name__)

# Extension points: later layers (security, agents, Lua processes) add a
# coroutine ``hook(app)`` run at open, in order, and may register closers.
_OPEN_HOOKS: list[Callable[["App"], Awaitable[None]]] = []


def on_open(hook: Callable[["App"], Awaitable[None]]) -> Callable[["App"], Awaitable[None]]:
    """Register ``hook(app)`` to run when an App opens (after store, registry, Lua, tasks)."""
    _OPEN_HOOKS.append(hook)
    return hook


class App:
    """A node of an app: ``node``, ``store``, ``registry``, ``lua``, ``tasks`` (+ later layers)."""

    def __init__(self, settings: AppSettings, node: Node, store: Store, registry: Registry,
                 lua: LuaHost, tasks: TaskEngine) -> None:
        self.settings = settings
        self.node = node
        self.store = store
        self.registry = registry
        self.lua = lua
        self.tasks = tasks
        self.extensions: dict[str, Any] = {}
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
    ) -> "App":
        """Open the app at ``path`` (a directory or a single YAML file).

        Lease settings not given here come from the ``tasks:`` block of the
        settings (``wippy_agents.tasks.settings``), else 15 s / 5 s.
        """
        settings = settings or AppSettings.load(path, store=store, node=node)
        options = engine_options(settings.extra, where=str(settings.app_file or settings.root / "wippy.yaml"),
                                 lease_seconds=lease_seconds, heartbeat_seconds=heartbeat_seconds,
                                 claim_interval=claim_interval)
        the_store = await open_store(settings.store)
        the_node = Node(settings.node)
        registry: Registry | None = None
        tasks: TaskEngine | None = None
        app: App | None = None
        try:
            # Imported here, not at the top: the agents layer registers its open hook on import.
            from .agents import builtin_entries
            from .security import wiring as _security_wiring  # noqa: F401  (registers the security open hook)
            from .console import session as _console_session  # noqa: F401  (the console.session task kind)

            registry = Registry(the_store, author_default="cli", builtins=builtin_entries())
            registry.add_validator(code_validator(compile_check))
            lua = LuaHost(node=the_node, registry=registry)
            lua.services = registry_services(registry)
            await registry.load(settings)
            tasks = TaskEngine(the_store, node_name=settings.node, node=the_node, max_tasks=settings.max_tasks,
                               identity=this_process(settings.node, stable=settings.node_stable),
                               **options.as_kwargs())
            await tasks.register()  # NameTaken while another live process holds this node name
            app = cls(settings, the_node, the_store, registry, lua, tasks)
            for hook in _OPEN_HOOKS:
                await hook(app)
            if follow:
                registry.follow()
            if watch:
                registry.watch(settings, on_error=on_watch_error or (lambda exc: log.error("%s", exc)))
            if recover:
                await tasks.recover()
            return app
        except BaseException:
            if app is not None:  # a layer's hook failed: undo the ones that ran, then the core
                await app.close()
                raise
            if tasks is not None:
                await tasks.close()
            if registry is not None:
                await registry.close()
            await the_node.stop()
            await the_store.close()
            raise

    def add_closer(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Run ``closer()`` at ``close``, before the core layers stop (last added runs first)."""
        self._closers.append(closer)

    def entry(self, entry_id: str) -> Entry:
        found = self.registry.get(entry_id)
        if found is None:
            raise EntryNotFound(f"entry {entry_id!r} not found; `wippy registry list` shows what exists", id=entry_id)
        return found

    async def call(self, entry_id: str, args: Any = None, *, actor: Any = None) -> Any:
        """Call a function entry (``function.lua``) and return its first result."""
        entry = self.entry(entry_id)
        if entry.kind != "function.lua":
            raise UsageError(f"{entry_id!r} is a {entry.kind!r} entry, not a function (kind function.lua)")
        return await self.lua.call_function(entry, args, actor=actor)

    async def close(self) -> None:
        """Stop everything: later layers, tasks, registry, processes, then the store."""
        self.tasks.interrupt()  # first: a step cut short by the layers closing is not the task's error
        for closer in reversed(self._closers):
            try:
                await closer()
            except Exception:  # noqa: BLE001 - one failing closer must not leak the rest
                log.exception("closer failed during shutdown")
        self._closers.clear()
        await self.tasks.close()
        await self.registry.close()
        await self.node.stop()
        await self.store.close()

    async def __aenter__(self) -> "App":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# Layer wiring (each line registers one layer's open hook; order is run order).
from .lua.hosting import attach_processes  # noqa: E402  (Lua processes, process.host, process.service)

on_open(attach_processes)
from .tasks.workflow import attach_workflows  # noqa: E402  (workflow.lua as durable tasks)

on_open(attach_workflows)
