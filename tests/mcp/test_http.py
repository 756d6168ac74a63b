"""A streamable-HTTP MCP server, with a header whose value is a ${secret:NAME} read at connect time."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from wippy_agents.agents import ToolCallContext, dispatch_tool

from .conftest import mcp_app

SERVER = str(Path(__file__).with_name("http_server.py"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def http_server():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, SERVER, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):  # bounded: ~15 s for the server to listen
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            pytest.fail("the HTTP MCP server did not start")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.kill()  # uvicorn's graceful stop would wait out idle streams
        proc.wait(10)


async def test_http_server_tools_are_called_with_the_secret_header(make_app, http_server, monkeypatch):
    monkeypatch.setenv("ECHO_TOKEN", "s3cret")
    server = {"name": "web", "kind": "mcp.server", "url": http_server,
              "headers": {"Authorization": "Bearer ${secret:ECHO_TOKEN}"}}
    app = await make_app(mcp_app([{"text": "-"}], servers=[server], tools=["app.mcp:web/*"]))
    entry = app.registry.get("app.mcp:web/auth")
    assert entry is not None and entry.data["input_schema"]["type"] == "object"
    assert "s3cret" not in json.dumps(app.registry.get("app.mcp:web").data)  # stored as the reference
    got = await dispatch_tool(app, entry, {}, ToolCallContext(app=app))
    assert (json.loads(got) if isinstance(got, str) else got) == {"authorization": "Bearer s3cret"}
