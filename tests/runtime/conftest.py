"""Every kernel test gets a fresh node that must stop cleanly and leave no task behind."""

from __future__ import annotations

import asyncio

import pytest

from wippy_agents.runtime import Node

from .helpers import Exits


@pytest.fixture
async def node():
    n = Node("t")
    yield n
    await n.stop(timeout=2.0)
    assert not n.processes(), "node.stop() left processes behind"
    me = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    assert not leaked, f"tasks leaked past node.stop(): {leaked}"


@pytest.fixture
def exits(node):
    return Exits(node)
