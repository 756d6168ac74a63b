"""Fixtures for registry tests: small apps on disk, registries over real stores."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Awaitable, Callable

import pytest

from wippy_agents.registry import AppSettings, Registry
from wippy_agents.store import open_store

TOOL_YAML = """\
namespace: app.tools
entries:
  - name: weather
    kind: function.lua
    meta: {type: tool, description: "Current weather for a city"}
    source: file://weather.lua
    method: handler
    input_schema: {type: object, properties: {city: {type: string}}, required: [city]}
"""

WEATHER_LUA = "return { handler = function(args) return {city = args.city, temp = 21} end }\n"

AGENT_YAML = """\
namespace: app.agents
entries:
  - name: assistant
    kind: agent
    model: app.models:default
    prompt: app.prompts:assistant
    tools: [app.tools:*]
---
namespace: app.models
entries:
  - name: default
    kind: llm.model
    provider: scripted
    script: [{text: "hi"}]
---
namespace: app.prompts
entries:
  - name: assistant
    kind: prompt
    text: "You are helpful."
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """An app folder: a Lua tool, an agent with its model and prompt."""
    root = tmp_path / "app"
    write(root / "tools" / "weather.yaml", TOOL_YAML)
    write(root / "tools" / "weather.lua", WEATHER_LUA)
    write(root / "agents" / "assistant.yaml", AGENT_YAML)
    (root / "prompts").mkdir(parents=True)
    return root


@pytest.fixture
def settings(app: Path) -> AppSettings:
    return AppSettings.load(app)


@pytest.fixture
async def store(store_url):
    s = await open_store(store_url)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def registry(store, settings):
    reg = Registry(store, author_default="test")
    await reg.load(settings)
    try:
        yield reg
    finally:
        await reg.close()


async def eventually(predicate: Callable[[], bool | Awaitable[bool]], *, timeout: float = 5.0, step: float = 0.005) -> None:
    """Wait until ``predicate()`` holds, failing after ``timeout`` seconds."""

    async def loop() -> None:
        while True:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return
            await asyncio.sleep(step)

    await asyncio.wait_for(loop(), timeout)


class Recorder:
    """A registry subscriber that records events and lets a test await the next one."""

    def __init__(self) -> None:
        self.events: list[tuple[int, list[str]]] = []
        self._cond = asyncio.Event()

    def __call__(self, version: int, changed: list[str]) -> None:
        self.events.append((version, list(changed)))
        self._cond.set()

    def mark(self) -> int:
        """An index to pass as ``start``: only events after this moment count."""
        return len(self.events)

    async def wait_for(
        self, predicate: Callable[[int, list[str]], bool], timeout: float = 5.0, *, start: int = 0
    ) -> tuple[int, list[str]]:
        async def loop():
            while True:
                for ev in self.events[start:]:
                    if predicate(*ev):
                        return ev
                self._cond.clear()
                await self._cond.wait()

        return await asyncio.wait_for(loop(), timeout)
