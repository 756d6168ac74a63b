"""Secrets (SPEC §3): ``${env:}`` is stored as written and expanded at use; a
``${secret:}`` value reaches only the runtime (here the provider's API key) —
never the store, a log line, Lua, a model request or ``registry show``."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3

import httpx
import respx

from wippy_agents.cli import main
from wippy_agents.llm import ModelConfig, make_provider
from wippy_agents.security.secrets import MASK, displayed, reveal, shown
from wippy_agents.testing import mock_http_client

from ..llm.conftest import OPENAI_URL, SSE_HEADERS, oa_delta, oa_usage, openai_sse
from ..security.apps import app_yaml, open_app

DSN = "pg://admin:S3CRET-dsn-0xA1@db/x"
KEY = "sk-S3CRET-key-0xB2"
SECRETS = (DSN, KEY, "S3CRET")

PEEK = """return {handler = function(a)
  local e = registry.get("app.db:main")
  local f = registry.find{kind = "registry.entry"}
  return {dsn = e.data.dsn, url = e.data.url, host = e.data.host, found = f[1].data.dsn}
end}"""

DOCS = [
    {"namespace": "app.db", "entries": [{"name": "main", "kind": "registry.entry", "host": "${env:WIPPY_T_HOST}",
                                         "dsn": "${secret:WIPPY_T_DSN}", "url": "${secret:WIPPY_T_DSN}"}]},
    {"namespace": "app.models", "entries": [{"name": "oa", "kind": "llm.model", "provider": "openai",
                                             "model": "gpt-4o-mini", "api_key": "${secret:WIPPY_T_KEY}"}]},
    {"namespace": "app.peek", "entries": [
        {"name": "peek_db", "kind": "function.lua", "meta": {"type": "tool", "description": "Read the db settings"},
         "modules": ["registry"], "input_schema": {"type": "object"}, "source": PEEK},
        {"name": "peeker", "kind": "agent", "model": "app.models:oa", "prompt": "You look things up.",
         "tools": ["wippy.self:get_entry", "app.peek:peek_db"], "policies": ["app.security:admin"], "max_turns": 5},
    ]},
]


def _tool_turn(call_id: str, name: str, args: dict) -> str:
    return openai_sse(
        oa_delta(role="assistant", content=None, tool_calls=[{"index": 0, "id": call_id, "type": "function",
                                                              "function": {"name": name, "arguments": json.dumps(args)}}]),
        oa_delta(finish="tool_calls"), oa_usage(20, 5))


def _agents(app):
    return getattr(app, "agents", None) or app.extensions["agents"]


class _AllLogs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.getMessage()} {record.__dict__!r}")


def test_references_expand_only_where_used():
    env = {"H": "db", "S": "s3"}
    value = {"host": "${env:H}", "dsn": "pg://${secret:S}@x", "port": "${env:P:-5432}"}
    assert shown(value, environ=env) == {"host": "db", "dsn": f"pg://{MASK}@x", "port": "5432"}
    assert displayed(value) == {"host": "${env:H}", "dsn": f"pg://{MASK}@x", "port": "${env:P:-5432}"}
    assert reveal(value, environ=env) == {"host": "db", "dsn": "pg://s3@x", "port": "5432"}


async def test_a_secret_reaches_the_provider_and_nothing_else(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WIPPY_T_DSN", DSN)
    monkeypatch.setenv("WIPPY_T_KEY", KEY)
    monkeypatch.setenv("WIPPY_T_HOST", "db.internal")
    logs = _AllLogs()
    root = logging.getLogger("wippy_agents")
    root.addHandler(logs)
    level = root.level
    root.setLevel(logging.DEBUG)
    router = respx.MockRouter(assert_all_called=True, assert_all_mocked=True)
    route = router.post(OPENAI_URL).mock(side_effect=[
        httpx.Response(200, text=_tool_turn("c1", "get_entry", {"id": "app.db:main"}), headers=SSE_HEADERS),
        httpx.Response(200, text=_tool_turn("c2", "peek_db", {}), headers=SSE_HEADERS),
        httpx.Response(200, text=openai_sse(oa_delta(role="assistant", content="done"), oa_delta(finish="stop"),
                                            oa_usage(30, 2)), headers=SSE_HEADERS),
    ])
    http = mock_http_client(router)
    store = tmp_path / "state.db"
    try:
        app = await open_app(tmp_path, app_yaml(extra_docs=DOCS))
        try:
            entry = app.entry("app.db:main")
            assert entry.data["dsn"] == "${secret:WIPPY_T_DSN}"  # stored as written
            cfg = ModelConfig.from_entry(app.entry("app.models:oa"))
            assert cfg.api_key() == KEY and KEY not in repr(cfg)
            _agents(app).use_provider("app.models:oa", make_provider(cfg, http_client=http))
            result = await _agents(app).run("app.peek:peeker", "what is the db?", timeout=30)
            assert result.answer == "done"
            lua = await app.call("app.peek:peek_db", {})
            assert lua == {"dsn": MASK, "url": MASK, "host": "db.internal", "found": MASK}
        finally:
            await app.close()
        # the model: the key only in the Authorization header, the secret values nowhere
        assert len(route.calls) == 3
        for call in route.calls:
            assert call.request.headers["authorization"] == f"Bearer {KEY}"
            body = call.request.content.decode()
            assert not any(s in body for s in SECRETS), body
        assert MASK in route.calls[1].request.content.decode()  # get_entry's result reached it masked
        # registry show
        argv = ["registry", "show", "app.db:main", "--app", str(tmp_path / "app.yaml"), "--store", f"sqlite:///{store}"]
        assert await asyncio.to_thread(main, argv) == 0  # the CLI runs its own event loop
        shown_out = capsys.readouterr().out
        assert "dsn: '***'" in shown_out and "${env:WIPPY_T_HOST}" in shown_out
        assert not any(s in shown_out for s in SECRETS)
        # every table of the store
        db = sqlite3.connect(store)
        try:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            assert "registry_versions" in tables and "audit" in tables and "registry_current" in tables
            for table in tables:
                for row in db.execute(f"SELECT * FROM {table}"):  # noqa: S608 - names from sqlite_master
                    assert not any(s in repr(row) for s in SECRETS), (table, row)
        finally:
            db.close()
        # every log line
        assert logs.lines and not [line for line in logs.lines if any(s in line for s in SECRETS)]
    finally:
        root.removeHandler(logs)
        root.setLevel(level)
        await http.aclose()
