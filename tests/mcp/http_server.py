"""A streamable-HTTP MCP server for the tests: ``python http_server.py PORT``; ``auth`` echoes the Authorization header."""

from __future__ import annotations

import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("http-echo")


@server.tool(description="The Authorization header this call came with")
def auth(ctx: Context) -> dict:
    headers = ctx.headers or {}
    return {"authorization": headers.get("authorization")}


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
