"""``open_store(url)``: pick the backend by URL scheme, open it, apply migrations."""

from __future__ import annotations

from ..errors import ConfigError
from .base import Store
from .codec import safe_url

__all__ = ["open_store", "make_store"]


def make_store(url: str) -> Store:
    """The (not yet opened) backend for ``url``; raises ``ConfigError`` for an unknown scheme.

    ``sqlite:///rel/path.db`` (relative to the current directory),
    ``sqlite:////abs/path.db``, ``sqlite:///:memory:``;
    ``postgresql://user[:pw]@host[:port]/db[?schema=NAME]`` (``postgres://`` too).
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"store url {url!r}: expected sqlite:///path.db or postgresql://user@host/db")
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        from .sqlite import SqliteStore, parse_sqlite_url

        return SqliteStore(url, path=parse_sqlite_url(url))
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStore

        return PostgresStore(url)
    raise ConfigError(
        f"store url {safe_url(url)!r}: unknown scheme {scheme!r}; use sqlite:///path.db or postgresql://..."
    )


async def open_store(url: str) -> Store:
    """Open the store at ``url`` and apply pending migrations.

    Blocks until connected; raises ``ConfigError`` for a bad URL and
    ``StoreError`` (naming the URL without its password) when the database
    cannot be reached or migrated.

    >>> store = await open_store("sqlite:///.wippy/state.db")
    >>> await store.close()
    """
    store = make_store(url)
    await store.open()
    return store
