"""Store fixtures: an opened store per backend, and raw SQL access for corrupting rows."""

from __future__ import annotations

import sqlite3
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pytest

from wippy_agents.store import open_store


@pytest.fixture
async def store(store_url):
    s = await open_store(store_url)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def raw_sql(store_url):
    """``await raw_sql(sql, *args)``: run SQL on the store's database behind its back."""
    return _raw_sql(store_url)


@pytest.fixture
def raw_sql_pg(pg_url):
    return _raw_sql(pg_url)


def _raw_sql(store_url):
    async def run(sql: str, *args):
        if store_url.startswith("sqlite:"):
            db = sqlite3.connect(store_url[len("sqlite:///"):], isolation_level=None)
            try:
                return db.execute(sql.replace("$1", "?").replace("$2", "?"), args).fetchall()
            finally:
                db.close()
        import asyncpg

        parts = urlsplit(store_url)
        schema = parse_qs(parts.query)["schema"][0]
        conn = await asyncpg.connect(urlunsplit(parts._replace(query="")), server_settings={"search_path": schema})
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return run
