"""One live connection to an MCP server, held by a process on the node.

``connection_body(proc, link)`` is the body of the server's process: it opens
the transport (a stdio child process, or streamable HTTP), negotiates the
protocol with the official SDK's ``mcp.Client``, lists the tools, hands the
live client to ``link.up`` and then waits until the transport closes (the
child died, the HTTP session ended) or the process is stopped. Tool calls do
not pass through the mailbox: callers use the client directly (one JSON-RPC
round trip), the process only owns its lifetime, as a port does in Erlang.

``tools/list_changed`` is followed in both protocol eras: a
``notifications/tools/list_changed`` message on a handshake-era connection, a
``subscriptions/listen`` stream on a 2026-era one.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Protocol, TextIO

import anyio

from ..errors import McpError
from .config import ServerConfig

__all__ = ["connection_body", "Link", "list_all_tools"]

log = logging.getLogger(__name__)

_PAGES = 100  # a server whose tools/list never ends cannot hang the node


class Link(Protocol):
    """What the connection tells its owner (the ``McpClients`` manager)."""

    config: ServerConfig
    root: Path | None
    errlog: TextIO

    def up(self, client: Any, tools: list[Any]) -> None: ...

    def tools_changed(self, client: Any) -> Awaitable[None]: ...


async def list_all_tools(client: Any) -> list[Any]:
    """Every tool the server lists (all pages)."""
    tools: list[Any] = []
    cursor = None
    for _ in range(_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools
    raise McpError(f"tools/list kept paging past {_PAGES} pages")


@asynccontextmanager
async def _watched(inner: Any, closed: anyio.Event) -> AsyncIterator[Any]:
    """``inner`` transport whose read side sets ``closed`` when it ends (EOF, a dead child)."""
    async with inner as (read, write):
        send, recv = anyio.create_memory_object_stream(0)

        async def pump() -> None:
            try:
                async with send:
                    async for item in read:
                        await send.send(item)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass
            finally:
                closed.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            try:
                yield recv, write
            finally:
                tg.cancel_scope.cancel()


def _transport(config: ServerConfig, root: Path | None, errlog: TextIO) -> Any:
    if config.transport == "stdio":
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(command=config.command[0], args=list(config.command[1:]),
                                       env=config.resolved_env(), cwd=config.working_dir(root))
        return stdio_client(params, errlog=errlog)
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers=config.resolved_headers(), timeout=httpx2.Timeout(config.timeout, read=300.0))
    return _owning(streamable_http_client(str(config.url), http_client=http), http)


@asynccontextmanager
async def _owning(inner: Any, http: Any) -> AsyncIterator[Any]:
    async with http:
        async with inner as streams:
            yield streams


async def connection_body(proc: Any, link: Link) -> None:
    """The MCP server's process: connect, list, report ``up``, wait for the end of the transport.

    Exits with an ``McpError`` when the server goes away on its own (so its
    owner restarts it); returns normally only when stopped.
    """
    import mcp_types as types
    from mcp import Client
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    config = link.config
    closed = anyio.Event()
    holder: dict[str, Any] = {}

    async def on_message(message: Any) -> None:
        # On a 2026-era connection the listen stream reports changes (the SDK tees them here too).
        if isinstance(message, types.ToolListChangedNotification) and "client" in holder and not holder.get("listens"):
            await link.tools_changed(holder["client"])

    client = Client(_watched(_transport(config, link.root, link.errlog), closed), message_handler=on_message,
                    cache=None, read_timeout_seconds=config.timeout)
    try:
        async with client:
            holder["client"] = client
            tools = await list_all_tools(client)
            link.up(client, tools)
            caps = client.server_capabilities.tools
            async with anyio.create_task_group() as tg:
                if client.protocol_version in MODERN_PROTOCOL_VERSIONS and caps is not None and caps.list_changed:
                    holder["listens"] = True
                    tg.start_soon(_listen, client, link, closed)
                await closed.wait()
                tg.cancel_scope.cancel()
    except McpError:
        raise
    except (OSError, ValueError) as exc:
        raise McpError(f"MCP server {config.id!r} ({config.describe()}) could not start: {exc}",
                       server=config.id) from None
    except Exception as exc:  # noqa: BLE001 - the SDK's protocol errors: the process exits, its owner decides
        if closed.is_set():
            raise McpError(f"MCP server {config.id!r} closed its connection", server=config.id) from None
        raise McpError(f"MCP server {config.id!r} failed: {type(exc).__name__}: {exc}", server=config.id) from None
    raise McpError(f"MCP server {config.id!r} closed its connection", server=config.id)


async def _listen(client: Any, link: Link, closed: anyio.Event) -> None:
    from mcp.client.subscriptions import SubscriptionLost

    try:
        async with client.listen(tools_list_changed=True) as sub:
            async for _event in sub:
                await link.tools_changed(client)
    except SubscriptionLost:
        closed.set()
    except Exception as exc:  # noqa: BLE001 - a server that refuses to listen still serves calls
        log.warning("MCP server %s: subscriptions/listen failed (%s); tool list changes will not be seen",
                    link.config.id, exc)
