"""Fixtures for the agents room: one-file apps on a temporary SQLite store."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from wippy_agents.app import App


def write_app(tmp_path: Path, body: str, name: str = "app.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


@pytest.fixture
async def make_app(tmp_path):
    """``await make_app(yaml_text)`` opens an App on that one-file app; every app is closed at teardown."""
    opened: list[App] = []

    async def make(body: str, *, store: str | None = None, **kw) -> App:
        path = write_app(tmp_path, body)
        app = await App.open(path, store=store or f"sqlite:///{tmp_path / 'state.db'}", **kw)
        opened.append(app)
        return app

    yield make
    for app in reversed(opened):
        await app.close()
