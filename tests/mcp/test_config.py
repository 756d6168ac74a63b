"""ServerConfig: entries read into start parameters; ${secret:NAME} read only at connect time."""

from __future__ import annotations

import pytest

from wippy_agents.errors import ConfigError
from wippy_agents.mcp import ServerConfig, expand
from wippy_agents.mcp.config import visible_name
from wippy_agents.registry import Entry, EntryId


def entry(**data) -> Entry:
    return Entry(id=EntryId("app.mcp:gh"), kind="mcp.server", data=data)


def test_secret_and_env_references_are_read_from_the_environment_when_used():
    cfg = ServerConfig.from_entry(entry(url="https://mcp.example/mcp",
                                        headers={"Authorization": "Bearer ${secret:GH_TOKEN}", "X-Env": "${env:STAGE}"}))
    assert cfg.transport == "http" and cfg.headers["Authorization"] == "Bearer ${secret:GH_TOKEN}"
    assert cfg.resolved_headers({"GH_TOKEN": "t0k", "STAGE": "dev"}) == {"Authorization": "Bearer t0k", "X-Env": "dev"}


def test_a_missing_secret_is_one_line_naming_the_entry_field_and_variable():
    with pytest.raises(ConfigError, match=r"app.mcp:gh env.TOKEN: \$\{secret:GH_TOKEN\} is not set; export GH_TOKEN"):
        ServerConfig.from_entry(entry(command=["gh-mcp"], env={"TOKEN": "${secret:GH_TOKEN}"})).resolved_env({})
    assert expand("plain", where="x", environ={}) == "plain"


def test_tool_globs_and_visible_names():
    cfg = ServerConfig.from_entry(entry(command=["x"], tools=["get_*"], prefix="gh_"))
    assert cfg.offers("get_issue") and not cfg.offers("delete_repo")
    assert visible_name("gh_", "get.issue") == "gh_get_issue" and visible_name("", "9lives") == "_9lives"
    assert cfg.digest != ServerConfig.from_entry(entry(command=["y"])).digest


async def test_a_server_that_cannot_start_leaves_the_node_up_and_says_why(tmp_path):
    from wippy_agents.app import App
    from wippy_agents.errors import McpError

    from .conftest import mcp_app

    path = tmp_path / "app.yaml"
    missing = {"name": "gone", "kind": "mcp.server", "command": [str(tmp_path / "no-such-program")], "max_restarts": 0}
    path.write_text(mcp_app([{"text": "-"}], servers=[missing], tools=["app.mcp:gone/*"]), encoding="utf-8")
    async with await App.open(path, store=f"sqlite:///{tmp_path / 's.db'}") as app:
        assert app.registry.find(kind="mcp.tool") == []
        with pytest.raises(McpError, match=r"'app.mcp:gone'"):
            await app.mcp.refresh("app.mcp:gone")
