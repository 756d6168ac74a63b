"""Secrets never reach Lua or the model: secret-named values are redacted from what they read."""

from __future__ import annotations

import pytest

from wippy_agents.agents import ToolCallContext, dispatch_tool
from wippy_agents.registry import Changeset
from wippy_agents.security.secrets import REDACTED, is_secret_field, redact, reveal

from .apps import actor_of, app_yaml, open_app, self_tool

DB = {"namespace": "app.db", "entries": [{"name": "main", "kind": "registry.entry", "host": "db.local",
                                          "password": "${env:WIPPY_TEST_DB_PASSWORD}",
                                          "options": {"auth_token": "tok-123", "max_output_tokens": 5}}]}


@pytest.mark.parametrize("name,secret", [
    ("password", True), ("db_password", True), ("api_key", True), ("OPENAI_API_KEY", True), ("client_secret", True),
    ("auth-token", True), ("api_key_env", False), ("max_output_tokens", False), ("author", False), ("host", False),
    ("sort_key", False),
])
def test_secret_field_names(name, secret):
    assert is_secret_field(name) is secret


def test_redact_keeps_the_shape():
    assert redact({"a": [{"token": "x"}, 1], "password": "", "key": "k"}) == {"a": [{"token": REDACTED}, 1],
                                                                          "password": "", "key": "k"}


async def test_neither_the_model_nor_lua_sees_a_secret_value(tmp_path, monkeypatch):
    monkeypatch.setenv("WIPPY_TEST_DB_PASSWORD", "hunter2")
    app = await open_app(tmp_path, app_yaml(extra_docs=[DB]))
    try:
        # stored as written; Python code (a db driver) expands it where it uses it
        assert app.entry("app.db:main").data["password"] == "${env:WIPPY_TEST_DB_PASSWORD}"
        assert reveal(app.entry("app.db:main").data["password"]) == "hunter2"
        seen = await self_tool(app, "get_entry", {"id": "app.db:main"})
        assert seen["data"] == {"host": "db.local", "password": REDACTED,
                                "options": {"auth_token": REDACTED, "max_output_tokens": 5}}
        cs = Changeset(base_version=None, author="cli")
        cs.create({"id": "app.tools:peek_db", "kind": "function.lua", "meta": {"type": "tool", "description": "d"},
                   "input_schema": {"type": "object"}, "modules": ["registry"],
                   "source": """return {handler = function(a)
                       local e = registry.get("app.db:main")
                       local f = registry.find{kind = "registry.entry"}
                       return {e.data.password, f[1].data.password, e.data.host} end}"""})
        await app.registry.apply(cs)
        out = await dispatch_tool(app, app.entry("app.tools:peek_db"), {},
                                  ToolCallContext(app=app, actor=actor_of(app, "app.agents:admin")))
        assert out == [REDACTED, REDACTED, "db.local"]
        assert "hunter2" not in repr(await app.call("app.tools:peek_db", {}))  # even for the owner's `wippy call`
    finally:
        await app.close()
