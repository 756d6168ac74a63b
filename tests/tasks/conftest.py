"""Fixtures for the durable task tests: real stores, short leases, bounded waits."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any, Awaitable, Callable

import pytest

from wippy_agents.errors import StoreError
from wippy_agents.store import open_store
from wippy_agents.tasks import TaskEngine

# Short leases so takeovers happen within a test; the heartbeat is well inside.
LEASE = 0.6
BEAT = 0.1


async def eventually(check: Callable[[], Awaitable[Any] | Any], *, timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll ``check()`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def until_set(event: asyncio.Event, timeout: float = 5.0) -> None:
    await asyncio.wait_for(event.wait(), timeout)


class Engines:
    """Opens stores and engines for a test and closes them all afterwards."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._stores: list[Any] = []
        self._engines: list[TaskEngine] = []

    async def store(self) -> Any:
        store = await open_store(self.url)
        self._stores.append(store)
        return store

    async def engine(self, node_name: str = "n1", *, store: Any = None, **options: Any) -> TaskEngine:
        options.setdefault("lease_seconds", LEASE)
        options.setdefault("heartbeat_seconds", BEAT)
        options.setdefault("claim_interval", 0)  # claim only when a test asks (recover)
        options.setdefault("shutdown_timeout", 0.2)
        options.setdefault("poll_interval", 0.05)
        engine = TaskEngine(store or await self.store(), node_name=node_name, **options)
        self._engines.append(engine)
        return engine

    async def aclose(self) -> None:
        for engine in self._engines:
            await engine.close()
        for store in self._stores:
            await store.close()


@pytest.fixture
async def engines(sqlite_url):
    pool = Engines(sqlite_url)
    yield pool
    await pool.aclose()


@pytest.fixture
async def any_engines(store_url):
    """Same as ``engines`` over SQLite and PostgreSQL."""
    pool = Engines(store_url)
    yield pool
    await pool.aclose()


@pytest.fixture
def effects() -> Counter:
    """Counts side effects by name: what must happen exactly once."""
    return Counter()


class FlakyStore:
    """Wraps a real store, counts calls; the next ``n`` calls of chosen methods raise ``StoreError``.

    ``after=True`` performs the real call first and then raises (the commit
    landed but the answer was lost).
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._failures: dict[str, list[bool]] = {}
        self.failed: Counter = Counter()
        self.calls: Counter = Counter()

    def fail(self, method: str, times: int, *, after: bool = False) -> None:
        self._failures[method] = [after] * times

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            pending = self._failures.get(name)
            if pending:
                after = pending.pop(0)
                self.failed[name] += 1
                if after:
                    await attr(*args, **kwargs)
                raise StoreError(f"simulated outage in {name}")
            return await attr(*args, **kwargs)

        return call
