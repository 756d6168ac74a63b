"""Suite-wide fixtures: no real network, PostgreSQL on demand, bounded waits."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid

import pytest

PG_DSN = os.environ.get("WIPPY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
_LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost", "0.0.0.0"}


@pytest.fixture(autouse=True)
def _no_real_network(monkeypatch):
    """Any connection to a non-local host is a test error (tests never call a real LLM)."""
    real_connect = socket.socket.connect

    def guarded(self, address, *args, **kwargs):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in _LOCAL_HOSTS and self.family in (socket.AF_INET, socket.AF_INET6):
            raise RuntimeError(f"test tried to reach the network: {address!r}")
        return real_connect(self, address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded)


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def pg_url():
    """A PostgreSQL URL with a fresh, private schema; dropped afterwards.

    A missing server skips the test locally and fails it under CI=true.
    """
    if not _postgres_reachable():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is required under CI=true")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not running")
    import asyncpg

    schema = "t_" + uuid.uuid4().hex[:12]

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(PG_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE SCHEMA "{schema}"'))
    yield f"{PG_DSN}?schema={schema}"
    asyncio.run(run(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request):
    """Parametrises a test over both store backends."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


@pytest.fixture(autouse=True)
def keep_logging_as_it_was():
    """``cli.main`` (run in-process by many tests) points the ``wippy_agents`` logger at the
    current stderr; undo that so later tests never write to a closed capture."""
    logger = logging.getLogger("wippy_agents")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    for handler in list(logger.handlers):
        if handler not in saved[0]:
            logger.removeHandler(handler)
    for handler in saved[0]:
        if handler not in logger.handlers:
            logger.addHandler(handler)
    logger.setLevel(saved[1])
    logger.propagate = saved[2]
