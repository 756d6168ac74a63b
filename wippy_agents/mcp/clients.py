"""``McpClients``: the node's MCP servers as supervised processes, and their tools in the registry.

Each ``mcp.server`` entry gets a process (``connection_body``) started on first
use — the first call of one of its tools, or listing its tools when the
registry holds none for its current definition yet. A process that dies on
its own is restarted with exponential backoff (0.1 s doubling to 5 s) unless
it died ``max_restarts`` times within ``period`` seconds: then the server is
given up until its entry changes, and its tools answer with that reason.
``close`` stops every server (the app calls it before the node stops).

The server's tools are ``mcp.tool`` entries ``<server id>/<tool>``, written by
this manager as ordinary changesets (author ``mcp``), so a new listing —
at start, after a restart, on ``tools/list_changed`` — is one registry change
with its ``registry.changed`` event, and agents see it on their next turn.

>>> async with await App.open("app") as app:                       # doctest: +SKIP
...     await app.mcp.refresh("app.mcp:time")
...     app.registry.get("app.mcp:time/get_current_time").kind
'mcp.tool'
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from pathlib import Path
from typing import Any, TextIO

from ..errors import McpError, ToolError, WippyError
from ..registry import Entry, Registry
from .config import ServerConfig, tool_entry_data
from .connection import connection_body, list_all_tools
from .results import tool_result

__all__ = ["McpClients"]

log = logging.getLogger(__name__)

SERVER_KIND, TOOL_KIND = "mcp.server", "mcp.tool"
AUTHOR = "mcp"
_BACKOFF_FIRST, _BACKOFF_MAX = 0.1, 5.0


class _Server:
    """One server's state: its process, the live client once up, its restart history."""

    def __init__(self, owner: "McpClients", config: ServerConfig) -> None:
        self.owner = owner
        self.config = config
        self.root = owner.root
        self.errlog: TextIO = owner.errlog
        self.pid: str | None = None
        self.client: Any = None
        self.ready: asyncio.Future[Any] | None = None
        self.deaths: collections.deque[float] = collections.deque()
        self.given_up: str | None = None
        self.stopping = False
        self.starts = 0
        self.synced: asyncio.Task | None = None

    # -- the Link protocol (called by connection_body) -------------------------
    def up(self, client: Any, tools: list[Any]) -> None:
        self.client = client
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(client)
        self.synced = self.owner._spawn(self.owner._sync(self.config, tools), f"mcp-sync:{self.config.id}")

    async def tools_changed(self, client: Any) -> None:
        log.info("MCP server %s: tools/list_changed", self.config.id)
        self.owner.list_changed_seen[self.config.id] = self.owner.list_changed_seen.get(self.config.id, 0) + 1
        tools = await list_all_tools(client)
        await self.owner._sync(self.config, tools)

    # -- lifetime -------------------------------------------------------------
    def start(self) -> asyncio.Future[Any]:
        if self.pid is not None and self.ready is not None:
            return self.ready  # starting or up: one process per server
        if self.ready is None or (self.ready.done() and self.client is None):
            self.ready = asyncio.get_running_loop().create_future()
            self.starts += 1
            self.pid = self.owner.node.spawn(self._body, name=None)
        return self.ready

    async def _body(self, proc: Any) -> None:
        try:
            await connection_body(proc, self)
        except McpError as exc:
            self._down(exc)
            proc.stop({"error": str(exc)})  # an expected end, logged by _down: no crash report
        except BaseException as exc:
            self._down(exc)
            raise
        self._down(None)

    def _down(self, exc: BaseException | None) -> None:
        self.client = None
        self.pid = None
        ready = self.ready
        error = exc if isinstance(exc, WippyError) else McpError(
            f"MCP server {self.config.id!r} stopped", server=self.config.id)
        if ready is not None and not ready.done():
            ready.set_exception(error)
            ready.exception()  # retrieved here: a start nobody awaited must not warn
        if self.stopping or isinstance(exc, asyncio.CancelledError):
            return
        now = time.monotonic()
        self.deaths.append(now)
        while self.deaths and now - self.deaths[0] > self.config.period:
            self.deaths.popleft()
        if len(self.deaths) > self.config.max_restarts:
            self.given_up = (f"MCP server {self.config.id!r} died {len(self.deaths)} times within "
                             f"{self.config.period:g} s and was given up; last error: {error}")
            log.error("%s", self.given_up)
            return
        delay = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (len(self.deaths) - 1))
        log.warning("MCP server %s went down (%s); restarting in %.1f s", self.config.id, error, delay)
        self.owner._spawn(self._restart(delay), f"mcp-restart:{self.config.id}")

    async def _restart(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self.stopping and self.given_up is None and self.pid is None:  # a call may have restarted it
            self.ready = None
            self.start()

    async def stop(self) -> None:
        self.stopping = True
        pid = self.pid
        if pid is not None and self.owner.node.is_alive(pid):
            self.owner.node.exit(pid, "shutdown")
            for _ in range(200):  # the SDK bounds its own shutdown (close stdin, TERM, KILL) to ~5 s
                if not self.owner.node.is_alive(pid):
                    break
                await asyncio.sleep(0.025)


class McpClients:
    """The node's MCP servers: start on first use, restart with backoff, tools kept in the registry."""

    def __init__(self, registry: Registry, node: Any, *, root: Path | None = None,
                 errlog: TextIO | None = None, close_errlog: bool = False, start_timeout: float = 30.0) -> None:
        self.registry = registry
        self.node = node
        self.root = root
        self.start_timeout = start_timeout
        self._own_errlog = errlog is None or close_errlog
        self.errlog: TextIO = errlog if errlog is not None else open(os.devnull, "w")  # noqa: SIM115
        self._servers: dict[str, _Server] = {}
        self._tasks: set[asyncio.Task] = set()
        self._sub: Any = None
        self.list_changed_seen: dict[str, int] = {}

    # -- opening ----------------------------------------------------------------
    async def start(self) -> None:
        """Follow ``mcp.server`` changes; list the tools of servers the registry has none for (bounded)."""
        self._sub = self.registry.subscribe(self._on_change)
        await self._reconcile(list(self._server_entries()))

    def _server_entries(self) -> list[Entry]:
        return self.registry.find(kind=SERVER_KIND)

    async def _on_change(self, version: int, changed: list[str]) -> None:
        touched = []
        for entry_id in changed:
            entry = self.registry.get(entry_id)
            if entry is not None and entry.kind == SERVER_KIND:
                touched.append(entry)
            elif entry is None and entry_id in self._servers:
                await self._forget(entry_id)
        if touched:
            await self._reconcile(touched)

    async def _reconcile(self, entries: list[Entry]) -> None:
        jobs = []
        for entry in entries:
            config = ServerConfig.from_entry(entry)
            server = self._servers.get(config.id)
            if server is not None and server.config.fingerprint == config.fingerprint:
                continue
            if server is not None:
                await server.stop()
            self._servers[config.id] = _Server(self, config)
            if server is not None or not self._has_current_tools(config):
                jobs.append(self._discover(config.id))
        await self._drop_orphans()
        if jobs:
            await asyncio.gather(*jobs)

    def _has_current_tools(self, config: ServerConfig) -> bool:
        found = [e for e in self.registry.find(kind=TOOL_KIND) if e.data.get("server") == config.id]
        return bool(found) and all(e.data.get("listed_from") == config.digest for e in found)

    async def _discover(self, server_id: str) -> None:
        try:
            await asyncio.wait_for(self._connect(server_id), self.start_timeout)
            synced = self._servers[server_id].synced
            if synced is not None:
                await synced
        except (WippyError, asyncio.TimeoutError) as exc:
            log.error("MCP server %s: could not list its tools: %s", server_id, exc or "timed out")

    async def _forget(self, server_id: str) -> None:
        server = self._servers.pop(server_id, None)
        if server is not None:
            await server.stop()
        await self._drop_orphans()

    async def _drop_orphans(self) -> None:
        servers = {str(e.id) for e in self._server_entries()}
        orphans = [e for e in self.registry.find(kind=TOOL_KIND) if e.data.get("server") not in servers]
        if orphans:
            cs = self.registry.changeset(author=AUTHOR, reason="its mcp.server entry is gone")
            cs.base_version = None
            for entry in orphans:
                cs.delete(str(entry.id))
            await self.registry.apply(cs)

    # -- the tools in the registry ------------------------------------------------
    async def _sync(self, config: ServerConfig, tools: list[Any]) -> int:
        """Write the listed tools as ``mcp.tool`` entries (one changeset; nothing if unchanged)."""
        if self._servers.get(config.id) is None or self._servers[config.id].config.fingerprint != config.fingerprint:
            return self.registry.version  # an older definition's listing
        current = {str(e.id): e for e in self.registry.find(kind=TOOL_KIND) if e.data.get("server") == config.id}
        cs = self.registry.changeset(author=AUTHOR, reason=f"tools/list of {config.id}")
        cs.base_version = None
        wanted: set[str] = set()
        for tool in tools:
            if not config.offers(tool.name):
                continue
            meta, data = tool_entry_data(config, tool)
            entry_id = f"{config.id}/{tool.name}"
            try:
                entry = Entry.from_record({"id": entry_id, "kind": TOOL_KIND, "meta": meta, "data": data})
            except WippyError as exc:
                log.warning("MCP server %s: tool %r not offered: %s", config.id, tool.name, exc)
                continue
            wanted.add(entry_id)
            if not entry.same_content(current.get(entry_id)):
                cs.put(entry)
        for entry_id in current:
            if entry_id not in wanted:
                cs.delete(entry_id)
        if not len(cs):
            return self.registry.version
        try:
            return await self.registry.apply(cs)
        except WippyError as exc:
            log.error("MCP server %s: its tools could not be registered: %s", config.id, exc)
            return self.registry.version

    # -- calling ----------------------------------------------------------------
    async def _connect(self, server_id: str) -> Any:
        server = self._servers.get(server_id)
        if server is None:
            entry = self.registry.get(server_id)
            if entry is None or entry.kind != SERVER_KIND:
                raise McpError(f"there is no mcp.server entry {server_id!r}", server=server_id)
            server = self._servers[server_id] = _Server(self, ServerConfig.from_entry(entry))
        if server.given_up is not None:
            raise McpError(server.given_up, server=server_id)
        if server.client is not None:
            return server.client
        return await asyncio.shield(server.start())

    async def refresh(self, server_id: str) -> int:
        """Start the server if needed, list its tools and write them; returns the registry version."""
        client = await asyncio.wait_for(self._connect(server_id), self.start_timeout)
        return await self._sync(self._servers[server_id].config, await list_all_tools(client))

    async def call(self, entry: Entry, args: Any) -> Any:
        """Call the MCP tool of ``entry`` (an ``mcp.tool``); its result as JSON-like data.

        Raises ``ToolError`` for anything the model can act on: the server's own
        error result, a protocol error, a server that could not start or died
        during the call (it is being restarted: calling again may work).
        """
        server_id, name = str(entry.data.get("server")), str(entry.data.get("tool"))
        try:
            client = await asyncio.wait_for(self._connect(server_id), self.start_timeout)
        except asyncio.TimeoutError:
            raise ToolError(f"MCP server {server_id!r} did not start within {self.start_timeout:g} s",
                            tool=str(entry.id)) from None
        except McpError as exc:
            raise ToolError(f"tool {str(entry.id)!r} is unavailable: {exc}", tool=str(entry.id)) from None
        from mcp import MCPError

        server = self._servers[server_id]
        try:
            result = await client.call_tool(name, args if isinstance(args, dict) else {},
                                            read_timeout_seconds=server.config.timeout)
        except MCPError as exc:
            hint = " (the server is being restarted; call again)" if server.client is None else ""
            raise ToolError(f"MCP server {server_id!r} refused {name!r}: {exc}{hint}", tool=str(entry.id)) from None
        except (TimeoutError, asyncio.TimeoutError):
            raise ToolError(f"MCP tool {name!r} took longer than {server.config.timeout:g} s",
                            tool=str(entry.id)) from None
        return tool_result(str(entry.id), result)

    def status(self) -> dict[str, dict[str, Any]]:
        """Per server: running pid (or None), starts, deaths in the window, why it was given up."""
        return {sid: {"pid": s.pid, "up": s.client is not None, "starts": s.starts, "deaths": len(s.deaths),
                      "given_up": s.given_up} for sid, s in self._servers.items()}

    # -- closing ------------------------------------------------------------------
    def _spawn(self, coro: Any, name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Stop following the registry and stop every server process."""
        if self._sub is not None:
            self._sub.cancel()
            self._sub = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(s.stop() for s in self._servers.values()))
        self._servers.clear()
        if self._own_errlog:
            self.errlog.close()
