"""Fixtures for the MCP room: apps with a real MCP server (mcp-server-time, or our counter server)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from wippy_agents.app import App

COUNTER_SERVER = str(Path(__file__).with_name("counter_server.py"))
TIME_SERVER = [sys.executable, "-m", "mcp_server_time", "--local-timezone", "Europe/Lisbon"]


def mcp_app(script: list[dict], *, servers: list[dict], tools: list[str], rules: list[dict] | None = None,
            extra: list[dict] | None = None) -> str:
    """A one-file app: app.mcp servers, a scripted model, agent app.agents:a with ``tools``."""
    rules = rules if rules is not None else [{"effect": "allow", "actions": ["tool.call", "lua.module"],
                                              "resources": ["*"]}]
    docs = [
        {"namespace": "app.security", "entries": [{"name": "p", "kind": "security.policy", "rules": rules}]},
        {"namespace": "app.mcp", "entries": servers},
        {"namespace": "app.models", "entries": [{"name": "m", "kind": "llm.model", "provider": "scripted",
                                                 "context_window": 100000, "script": script}]},
        {"namespace": "app.agents", "entries": [{"name": "a", "kind": "agent", "model": "app.models:m",
                                                 "prompt": "Use the tools.", "tools": tools, "max_turns": 8,
                                                 "policies": ["app.security:p"]}]},
        *(extra or []),
    ]
    return "\n---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def counter(tmp_path: Path, name: str = "counter", **fields) -> dict:
    return {"name": name, "kind": "mcp.server",
            "command": [sys.executable, COUNTER_SERVER, str(tmp_path / f"{name}.calls")], **fields}


def calls_made(tmp_path: Path, name: str = "counter") -> list[str]:
    path = tmp_path / f"{name}.calls"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


@pytest.fixture
async def make_app(tmp_path):
    opened: list[App] = []

    async def make(body: str, **kw) -> App:
        path = tmp_path / "app.yaml"
        path.write_text(body, encoding="utf-8")
        app = await App.open(path, store=f"sqlite:///{tmp_path / 'state.db'}", **kw)
        opened.append(app)
        return app

    yield make
    for app in reversed(opened):
        await app.close()
