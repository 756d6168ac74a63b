"""``LuaHost``: runs ``function.lua`` entries in fresh sandboxed states.

Every call gets its own ``LuaState`` (memory, instruction and wall-clock
limits from the entry; a pooled runtime reset to a pristine sandbox when
``pool_size > 0``, see ``pool.py``), an environment with exactly the modules the entry
lists (and the policy allows), its ``imports:`` libraries loaded into the same
state, and a driver that serves the modules' host operations.

>>> host = LuaHost(services=Services())                    # doctest: +SKIP
>>> await host.call_function({"id": "app:f", "kind": "function.lua",
...     "data": {"source": "return {handler = function(a) return a.x + 1 end}"}}, {"x": 1})  # doctest: +SKIP
2
"""

from __future__ import annotations

import logging
import time
from typing import Any, Mapping

from wippy_agents.errors import EntryNotFound, LuaError, LuaLimitExceeded, PermissionDenied, UsageError
from wippy_agents.lua.code import CodeSpec
from wippy_agents.lua.context import CallContext
from wippy_agents.lua.driver import drive
from wippy_agents.lua.modules import KNOWN_MODULES, LuaModule, LuaOp, builtin_modules
from wippy_agents.lua.pool import StatePool
from wippy_agents.lua.sandbox import LuaState, module_key
from wippy_agents.lua.seams import Services
from wippy_agents.lua.value import to_lua
from wippy_agents.lua.workers import LuaWorkers, default_workers
from wippy_agents.registry import kinds

__all__ = ["LuaHost", "LoadedCode"]

log = logging.getLogger(__name__)

MAX_CALL_DEPTH = 16


def _unprovided(name: str) -> str:
    return (f'error("module \\"{name}\\" is listed under modules: but this node does not provide it '
            f'(it comes with the layer that serves {name}.*)", 3)')


class LoadedCode:
    """An entry compiled into a fresh state, ready to run (also used by processes)."""

    def __init__(self, spec: CodeSpec, state: LuaState, env: Any, chunk: Any, actor: Any = None) -> None:
        self.spec, self.state, self.env, self.chunk = spec, state, env, chunk
        self.actor = actor  # who the code runs as (after services.run_as)

    def thread_args(self, *args: Any) -> tuple[Any, Any]:
        """A new hooked thread running the entry's method, and its first-resume arguments."""
        state = self.state
        thread = state.new_thread(state.run_entry)
        method = self.spec.method.encode() if self.spec.method else None
        lua_args = [to_lua(state.lua, a, where=f"{self.spec.id} argument") for a in args]
        return thread, (self.chunk, method, self.env, *lua_args)


class LuaHost:
    """Runs Lua entries against ``services``; modules are pluggable.

    Nothing here blocks except while Lua computes (bounded by its limits).
    """

    def __init__(self, *, services: Services | None = None, node: Any = None, registry: Any = None,
                 modules: Mapping[str, LuaModule] | None = None, pool_size: int = 8,
                 workers: LuaWorkers | None = None) -> None:
        self.services = services or Services()
        # pool_size=0: a brand-new runtime for every call (see pool.py for what reuse keeps isolated)
        self.pool = StatePool(pool_size)
        self.workers = workers if workers is not None else default_workers()  # where Lua runs (workers.py)
        self.node = node
        self.registry = registry
        self.modules: dict[str, LuaModule] = dict(modules) if modules is not None else builtin_modules()
        self.ops: dict[str, LuaOp] = {}
        for module in self.modules.values():
            self.ops.update(module.ops)
        self._known = KNOWN_MODULES | frozenset(self.modules)

    def add_module(self, module: LuaModule) -> None:
        """Add or replace a module (the process layer adds ``process``/``channel``)."""
        self.modules[module.name] = module
        self.ops.update(module.ops)
        self._known = KNOWN_MODULES | frozenset(self.modules)

    processes: Any = None  # the LuaProcesses manager, set by the process layer (lua/processes.py)

    async def spawn_process(self, entry: str, *, host: str, args: Any = (), actor: Any = None) -> str:
        """Spawn a ``process.lua`` entry on a ``process.host``; see ``LuaProcesses.spawn``."""
        if self.processes is None:
            raise UsageError("Lua processes are not enabled on this host (no LuaProcesses attached)")
        return await self.processes.spawn(entry, host, *args, actor=actor)

    # -- loading -----------------------------------------------------------
    async def load(self, entry: Any, *, actor: Any = None, default_method: str | None = "handler") -> LoadedCode:
        """Compile ``entry`` (an Entry, mapping or id) with its modules and imports into a fresh state.

        Raises ``EntryNotFound``, ``LuaCompileError``, ``PermissionDenied``, ``UsageError``.
        """
        if isinstance(entry, str):
            entry = await self.services.entry(entry, actor=actor)
        spec = CodeSpec.from_entry(entry, default_method=default_method)
        if self.services.run_as is not None:  # security: never more than the code's creator held
            actor = await self.services.run_as(actor, entry)
        state = self.pool.acquire(spec.limits) if self.pool.size > 0 else LuaState(spec.limits)
        known = state.known_names(self._known)
        env = await self._env(state, spec, known, actor, stack=(spec.id,))
        chunk = state.load(spec.source, spec.chunkname, env)
        return LoadedCode(spec, state, env, chunk, actor)

    async def _env(self, state: LuaState, spec: CodeSpec, known: Any, actor: Any, stack: tuple[str, ...]) -> Any:
        names = [m.name for m in self.modules.values() if m.always] + list(spec.modules)
        modules = {}
        for name in dict.fromkeys(names):
            module = self.modules.get(name)
            if module is None:
                if name in spec.modules:  # listed, but not provided here: say that, not "not enabled"
                    modules[name.encode()] = module_key(_unprovided(name), name)
                continue  # a known name nobody listed: stays "not enabled"
            if self.services.authorize is not None and not module.always:
                await self.services.authorize(actor, "lua.module", name)
            # the state loads the wrapper the first time code uses the module
            modules[name.encode()] = module_key(module.lua, name)
        imports: dict[bytes, Any] = {}
        for alias, ref in spec.imports.items():
            lib_id = spec.resolve(ref)
            if lib_id in stack:
                raise UsageError(f"entry {spec.id!r}: import cycle {' -> '.join((*stack, lib_id))}", id=spec.id)
            lib_entry = await self.services.entry(lib_id, actor=actor)
            lib = CodeSpec.from_entry(lib_entry, default_method=None)
            if lib.kind != "library.lua":
                raise UsageError(f"entry {spec.id!r}: import {alias!r} names {lib_id!r}, a {lib.kind}, "
                                 "not a library.lua", id=spec.id)
            lib_env = await self._env(state, lib, known, actor, (*stack, lib_id))
            imports[alias.encode()] = state.library(state.load(lib.source, lib.chunkname, lib_env))
        return state.new_env(spec.id, modules=modules, imports=state.table(imports) if imports else None, known=known)

    # -- running -----------------------------------------------------------
    async def call_function(self, entry: Any, args: Any = None, *, actor: Any = None, depth: int = 0,
                            process: Any = None) -> Any:
        """Run a ``function.lua`` entry's method with ``args``; returns its first result.

        Code always runs in a process (SPEC §5): ``process`` is the caller's
        (a ``LuaProcessCtl``: the function gets its pid, inbox and events);
        without one, when Lua processes are attached, the call gets a fresh
        process that lives for the call (``LuaProcesses.call_process``: it
        exits ``normal`` with the call, or with the call's error, so links
        end with it).

        Raises ``LuaError`` with the function's second result (``nil, err``) or
        its raised error, ``LuaLimitExceeded`` when a limit hit, and whatever
        ``load`` raises.  Cancellable while the Lua code waits on the host.
        """
        code = await self.load(entry, actor=actor)
        if process is None and self.processes is not None:
            return await self.processes.call_process(code.spec.id, code.actor,
                                                     lambda ctl: self._run(code, args, depth, ctl))
        return await self._run(code, args, depth, process)

    async def _run(self, code: LoadedCode, args: Any, depth: int, process: Any) -> Any:
        spec, state = code.spec, code.state
        ctx = CallContext(host=self, entry_id=spec.id, actor=code.actor, state=state, depth=depth,
                          extra={"process": process} if process is not None else None)
        state.log_extra = {"entry": spec.id} if process is None else {"pid": process.pid, "entry": spec.id}
        thread, first = code.thread_args(args)
        deadline = time.monotonic() + spec.limits.timeout
        state.start(deadline)
        try:
            results = await drive(state, thread, first, self._handler(ctx), deadline=deadline, who=spec.id,
                                  workers=self.workers)
        except LuaLimitExceeded as exc:
            if not str(exc).startswith(spec.id):
                raise LuaLimitExceeded(f"{spec.id}: {exc}", **{**exc.details, "entry": spec.id}) from None
            raise
        except LuaError:
            self.pool.release(state)  # a Lua error ends the call cleanly; a trip leaves it unreusable
            raise
        self.pool.release(state)
        value = results[0] if results else None
        if value is None and len(results) > 1 and results[1] is not None:
            err = results[1]
            text = err if isinstance(err, str) else repr(err)
            raise LuaError(f"{spec.id}: {text}", entry=spec.id, error=err)
        return value

    async def call_from(self, ctx: CallContext, entry_id: str, args: Any) -> Any:
        """``funcs.call`` from Lua: Lua entries run here, others go to ``services.call_function``."""
        if ctx.depth + 1 > MAX_CALL_DEPTH:
            raise UsageError(f"funcs.call: call depth over {MAX_CALL_DEPTH} ({ctx.entry_id!r} -> {entry_id!r})")
        entry = await self.services.entry(entry_id, actor=ctx.actor)
        kind = entry.get("kind") if isinstance(entry, Mapping) else entry.kind
        if kinds.call_mode(kind) == "lua":  # runs in the caller's process, if it has one
            process = ctx.extra.get("process") if ctx.extra else None
            return await self.call_function(entry, args, actor=ctx.actor, depth=ctx.depth + 1, process=process)
        if self.services.call_function is None:
            raise EntryNotFound(f"funcs.call: {entry_id!r} is a {kind}, not a callable function entry", id=entry_id)
        return await self.services.call_function(entry_id, args, actor=ctx.actor)

    async def invoke(self, ctx: CallContext, name: str, args: Any) -> Any:
        """Run op ``name`` for ``ctx``: its guard first (through ``services.guard``), then its handler.

        The one way every driver (function calls, processes, workflows, Lua
        agents) runs an op, so no path skips a check. An op that declares a
        guard on a host without a guard is refused (``PermissionDenied``):
        a missing guard never means "allowed".
        """
        op = self.ops.get(name)
        if op is None:
            raise UsageError(f"unknown host operation {name!r}")
        if op.guard is None:
            return await op.fn(ctx, *args)
        guard = self.services.guard
        if guard is None:
            raise PermissionDenied(f"{name} needs the {op.guard!r} permission and this Lua host has no security "
                                   "guard (open the node with App.open, or pass Services(guard=...))",
                                   action=op.guard, resource=name)
        shown = await guard.check(ctx, name, op, args)
        value = await op.fn(ctx, *args)
        return value if shown is None else shown(value)

    def _handler(self, ctx: CallContext) -> Any:
        invoke = self.invoke

        async def handle(op: str, args: list[Any]) -> Any:
            return await invoke(ctx, op, args)

        return handle

    def handler_for(self, ctx: CallContext) -> Any:
        """The driver handler serving this host's ops for ``ctx`` (for the process layer)."""
        return self._handler(ctx)
