"""A tiny MCP server (the SDK's MCPServer, ex-FastMCP) for the tests: counts its calls in a file.

Run as ``python counter_server.py COUNTER_FILE``. ``bump`` appends one line
to the file per call (not idempotent); ``whoami`` answers the server's pid
(read-only); ``fail`` returns an error result; ``grow`` adds the tool
``late`` and announces ``tools/list_changed``.
"""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

COUNTER = sys.argv[1]
server = MCPServer("counter")


@server.tool(description="Count one call and answer the count so far")
def bump(note: str) -> dict:
    with open(COUNTER, "a", encoding="utf-8") as f:
        f.write(note + "\n")
    with open(COUNTER, encoding="utf-8") as f:
        return {"count": sum(1 for _ in f), "note": note}


@server.tool(description="The server's process id", annotations=ToolAnnotations(read_only_hint=True))
def whoami() -> dict:
    return {"pid": os.getpid()}


@server.tool(description="Always fails with the given message")
def fail(message: str) -> str:
    raise ToolError(f"asked to fail: {message}")


@server.tool(description="Add the tool 'late' and announce the change")
async def grow(ctx: Context) -> str:
    server.add_tool(lambda: "I came late", name="late", description="Added at run time")
    await ctx.notify_tools_changed()
    try:
        await ctx.session.send_tool_list_changed()  # a handshake-era client hears this one
    except Exception:  # noqa: BLE001 - a 2026-era connection has no such channel
        pass
    return "grown"


if __name__ == "__main__":
    server.run()
