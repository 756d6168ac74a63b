"""The embedded SQLite store (aiosqlite; WAL, ``busy_timeout``, ``synchronous=NORMAL``).

Issue 17: with ``synchronous=NORMAL`` the journal (``writer.py``, group commit)
and the short task-row operations (``_ON_LOOP``) run on the loop thread on a
second connection with ``busy_timeout = 0``; a held write lock sends the call
to aiosqlite's thread below, so the loop never waits on a lock, and WAL
checkpoints run on that thread too. Everything else, and every call with
``synchronous=FULL``, takes the hand-off described next.

One hand-off per operation: aiosqlite moves every call to its worker thread
(a bare hand-off measured 55-135 µs on these shared 2-core machines, load
dependent), and ``execute`` + ``commit`` is two of them. So each method hands
ONE plain function to the connection's worker thread
(``aiosqlite.Connection._execute``) that runs the whole transaction with the
sqlite3 API and commits it before returning; a journal row then costs one
hand-off plus ~20-60 µs of SQLite work (``bench/store_micro.py``).

Why aiosqlite's thread and not our own executor: it is the dependency SPEC §1
names, it already owns the sqlite3 connection on one thread, and a
``ThreadPoolExecutor(1)`` hand-off measured no faster (177 vs 133 µs for a
no-op in the same run). ``_execute`` is aiosqlite's private queueing primitive;
it is checked at import time so an aiosqlite release that drops it fails
loudly, not subtly. Running SQLite on the event loop thread (~25 µs a commit)
was rejected: a busy lock (``busy_timeout``) or a WAL checkpoint's fsync would
stall every process on the node.

Writes run under ``BEGIN IMMEDIATE`` (or as one autocommitting statement) so
that two stores on one file serialise on the write lock with ``busy_timeout``
instead of failing with ``SQLITE_BUSY`` on a lock upgrade. The SQL itself
lives in ``sqlite_sql.py`` as functions of a sqlite3 connection.

Lease times are ``time.time()`` of this machine: an SQLite file is only ever
shared by processes of one host.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Sequence
from urllib.parse import parse_qs

import aiosqlite

from ..errors import ConfigError, StoreError, WippyError
from . import nodes_sql as n
from . import signals_sql as s
from . import sqlite_sql as q
from .base import AuditRecord, NodeRecord, StepRecord, TaskRecord, VersionRecord
from .codec import append_args, audit_rows, check_task_fields, dumps, safe_url, step_params
from .writer import JournalWriter, WriterBusy

__all__ = ["SqliteStore"]

log = logging.getLogger(__name__)

if not hasattr(aiosqlite.Connection, "_execute"):  # pragma: no cover - guards an aiosqlite upgrade
    raise ImportError("wippy_agents.store.sqlite needs aiosqlite.Connection._execute (aiosqlite 0.17-0.22)")


# Operations short enough to run on the loop thread (``writer.py``): single-row task
# reads and writes, a task's journal, signals. Migrations, registry appends, queue
# claims and audit scans stay on aiosqlite's thread.
_ON_LOOP = frozenset({"task_create", "task_get", "task_update", "task_claim", "task_heartbeat", "journal_load",
                      "journal_reopen", "signal_send", "signal_next", "node_heartbeat", "node_get"})


class SqliteStore:
    """The ``Store`` on one SQLite file (or ``:memory:``).

    >>> store = SqliteStore("sqlite:///.wippy/state.db", path=".wippy/state.db")
    >>> await store.open(); head = await store.registry_head(); await store.close()

    Every method raises ``StoreError`` naming the URL and the operation when
    SQLite fails; each is one hand-off to the connection's thread.
    """

    def __init__(self, url: str, *, path: str, busy_timeout: float = 5.0) -> None:
        self.url = url
        self.synchronous = parse_synchronous(url)
        self.safe_url = safe_url(url)
        self._path = path
        self._busy_timeout = busy_timeout
        self._conn: aiosqlite.Connection | None = None
        self._db: sqlite3.Connection | None = None
        self._closed = asyncio.Event()
        self._own_versions: set[int] = set()  # appended here: not "changes by another writer"
        self.writer: JournalWriter | None = None  # group commit of journal rows (not for :memory:)

    # -- lifecycle -----------------------------------------------------------
    async def open(self) -> None:
        """Create the file (and its folder), set the pragmas, apply migrations."""
        if self._conn is not None:
            return
        memory = self._path == ":memory:"
        if not memory:
            try:
                Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot open store {self.safe_url}: cannot create its folder: {exc}") from None
        conn = aiosqlite.connect(self._path, isolation_level=None, timeout=self._busy_timeout)
        try:
            await conn
        except (sqlite3.Error, OSError) as exc:
            # aiosqlite queued its thread's stop without awaiting it; let the thread end
            # while this loop still runs, so it never reports to a closed loop.
            await asyncio.to_thread(conn._thread.join, 5.0)
            raise StoreError(f"cannot open store {self.safe_url}: {exc}") from None
        self._conn, self._db = conn, conn._conn
        try:
            await self._call("open", q.setup, not memory, int(self._busy_timeout * 1000), self.safe_url,
                             self.synchronous)
            if not memory:
                self.writer = JournalWriter(self._path, self._call, full=self.synchronous == "FULL",
                                            safe_url=self.safe_url)
        except BaseException:
            await self.close()
            raise
        self._closed.clear()

    async def close(self) -> None:
        """Close the connection; ``registry_changes`` iterators end. Idempotent."""
        self._closed.set()
        writer, self.writer = self.writer, None
        if writer is not None:
            await writer.close()
        conn, self._conn, self._db = self._conn, None, None
        if conn is not None:
            await conn.close()

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, op: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(db, *args)``: a short task-row operation (``_ON_LOOP``) on the loop
        connection when it is free, else on the connection's thread: one hand-off."""
        conn = self._conn
        if conn is None:
            raise StoreError(f"store {self.safe_url}: {op} failed: the store is closed", op=op)
        writer = self.writer
        try:
            if writer is not None and op in _ON_LOOP and writer.on_loop:
                try:
                    return writer.run(fn, *args)
                except WriterBusy:
                    pass  # the write lock is held elsewhere: wait for it off the loop
            return await conn._execute(fn, self._db, *args)
        except WippyError:
            raise
        except (sqlite3.Error, ValueError) as exc:  # ValueError: aiosqlite "Connection closed"
            raise StoreError(f"store {self.safe_url}: {op} failed: {exc}", op=op) from exc

    # -- registry ------------------------------------------------------------
    async def registry_head(self) -> int:
        return await self._call("registry_head", q.registry_head)

    async def registry_append(
        self,
        record: VersionRecord,
        *,
        runtime_upserts: list[dict[str, Any]] = (),
        runtime_deletes: list[str] = (),
        audit: list[AuditRecord] = (),
    ) -> None:
        args = append_args(record, runtime_upserts, runtime_deletes, audit)
        await self._call("registry_append", q.registry_append, *args)
        self._own_versions.add(record.version)

    async def registry_current(self) -> tuple[int, list[dict[str, Any]]] | None:
        return await self._call("registry_current", q.registry_current)

    async def registry_current_reset(self, version: int, entries: list[dict[str, Any]]) -> bool:
        rows = [(e["id"], dumps(e, what=f"registry entry {e['id']!r}"), version) for e in entries]
        return await self._call("registry_current_reset", q.registry_current_reset, version, rows)

    async def registry_file_cache(self) -> dict[str, tuple[str, str]]:
        return await self._call("registry_file_cache", q.file_cache)

    async def registry_file_cache_put(self, rows: list[tuple[str, str, str]], gone: list[str] = ()) -> None:
        now = time.time()
        await self._call("registry_file_cache_put", q.file_cache_put,
                         [(p, k, e, now) for p, k, e in rows], [(g,) for g in gone])

    async def registry_history(self, *, limit: int | None = None) -> list[VersionRecord]:
        return await self._call("registry_history", q.registry_history, limit)

    async def registry_get_version(self, version: int) -> VersionRecord | None:
        return await self._call("registry_get_version", q.registry_get_version, version)

    async def runtime_entries(self) -> list[dict[str, Any]]:
        return await self._call("runtime_entries", q.runtime_entries)

    async def registry_changes(self, *, poll_interval: float = 0.5, since: int | None = None) -> AsyncIterator[int]:
        """Poll ``registry_head``; yield it when a version written by another
        store appeared after ``since`` (default: the head when iteration
        starts; pass the version you loaded so nothing slips in between).
        Ends when this store closes; raises ``StoreError`` if the database fails."""
        last = since
        while not self._closed.is_set():
            try:
                head = await self.registry_head()
            except StoreError:
                if self._closed.is_set():
                    return
                raise
            if last is None:
                last = head
            elif head > last:
                foreign = any(v not in self._own_versions for v in range(last + 1, head + 1))
                last = head
                if foreign:
                    yield head
                    continue
            try:
                await asyncio.wait_for(self._closed.wait(), poll_interval)
            except TimeoutError:
                pass

    # -- audit ---------------------------------------------------------------
    async def audit_append(self, records: list[AuditRecord]) -> None:
        if records:
            await self._call("audit_append", q.audit_append, audit_rows(records))

    async def audit_list(self, *, limit: int = 100, actor: str | None = None) -> list[AuditRecord]:
        return await self._call("audit_list", q.audit_list, limit, actor)

    # -- tasks ---------------------------------------------------------------
    async def task_create(self, task: TaskRecord) -> tuple[TaskRecord, bool]:
        return await self._call("task_create", q.task_create, task, time.time())

    async def task_get(self, task_id: str) -> TaskRecord | None:
        return await self._call("task_get", q.task_get, task_id)

    async def task_list(self, *, status: str | None = None, parent: str | None = None,
                        limit: int = 100) -> list[TaskRecord]:
        return await self._call("task_list", q.task_list, status, parent, limit)

    async def task_update(
        self, task_id: str, *, node: str | None = None, epoch: int | None = None, **fields: Any
    ) -> TaskRecord:
        """Set fields; with ``node`` (and ``epoch``) only while that claim holds the lease (else ``LeaseLost``)."""
        check_task_fields(task_id, fields)
        return await self._call("task_update", q.task_update, task_id, node, epoch, fields, time.time())

    async def task_claim(self, task_id: str, node: str, lease_seconds: float) -> TaskRecord | None:
        return await self._call("task_claim", q.task_claim, task_id, node, lease_seconds, time.time())

    async def task_claim_expired(
        self, node: str, lease_seconds: float, *, limit: int = 10, include_own: bool = False,
        exclude: Sequence[str] = (),
    ) -> list[TaskRecord]:
        """``include_own=True`` also takes tasks this node owns (recovery after a restart)."""
        return await self._call(
            "task_claim_expired", q.task_claim_expired, node, lease_seconds, limit, include_own, time.time(),
            json.dumps(list(exclude)),
        )

    async def task_heartbeat(
        self, node: str, task_ids: list[str], lease_seconds: float, *, epochs: dict[str, int] | None = None
    ) -> list[str]:
        if not task_ids:
            return []
        return await self._call("task_heartbeat", q.task_heartbeat, node, list(task_ids), lease_seconds,
                                None if epochs is None else dict(epochs), time.time())

    # -- nodes (migration 7) ---------------------------------------------------
    async def node_register(self, node: NodeRecord, *, ttl: float) -> NodeRecord:
        return await self._call("node_register", n.sqlite_register, node, ttl, time.time())

    async def node_heartbeat(self, name: str, *, started: str) -> bool:
        return await self._call("node_heartbeat", n.sqlite_heartbeat, name, started, time.time())

    async def node_get(self, name: str) -> NodeRecord | None:
        return await self._call("node_get", n.sqlite_get, name)

    async def node_list(self, *, host: str | None = None) -> list[NodeRecord]:
        return await self._call("node_list", n.sqlite_list, host)

    async def node_forget(self, name: str, *, started: str) -> int:
        return await self._call("node_forget", n.sqlite_forget, name, started)

    # -- journal -------------------------------------------------------------
    async def journal_load(self, task_id: str) -> list[StepRecord]:
        return await self._call("journal_load", q.journal_load, task_id)

    async def journal_write(self, step: StepRecord, *, node: str | None = None, epoch: int | None = None) -> None:
        """Group commit (``writer.py``): returns once the transaction holding this row committed."""
        if self.writer is None:
            await self._call("journal_write", q.journal_write, step_params(step), node, epoch)
        else:
            await self.writer.write([step_params(step)], node, epoch)

    async def journal_write_many(
        self, steps: list[StepRecord], *, node: str | None = None, epoch: int | None = None
    ) -> None:
        """All or none, in the same group commit as the other tasks' rows of this tick."""
        if not steps:
            return
        rows = [step_params(s) for s in steps]
        if self.writer is None:
            await self._call("journal_write_many", q.journal_write_many, rows, node, epoch)
        else:
            await self.writer.write(rows, node, epoch)

    async def journal_reopen(self, task_id: str, seq: int, *, node: str, epoch: int) -> bool:
        return await self._call("journal_reopen", q.journal_reopen, task_id, seq, node, epoch)

    # -- task signals (migration 3) --------------------------------------------
    async def signal_send(self, task_id: str, topic: str, payload: Any) -> int:
        """Persist a signal for a task; returns its id (ids grow in commit order)."""
        data = dumps(payload, what=f"signal {topic!r} to task {task_id!r}")
        return await self._call("signal_send", s.sqlite_send, task_id, topic, data, time.time())

    async def signal_next(self, task_id: str, topic: str, *, after: int) -> tuple[int, Any] | None:
        """The first signal for (task, topic) with an id above ``after``, or None."""
        return await self._call("signal_next", s.sqlite_next, task_id, topic, after)


def parse_synchronous(url: str) -> str:
    """``NORMAL`` (the default) or ``FULL`` from ``?synchronous=normal|full`` of a sqlite URL."""
    query = parse_qs(url.split("?", 1)[1]) if "?" in url else {}
    unknown = set(query) - {"synchronous"}
    if unknown:
        raise ConfigError(f"store url {url!r}: unknown option {sorted(unknown)[0]!r}; sqlite takes ?synchronous=normal|full")
    value = query.get("synchronous", ["normal"])[-1].upper()
    if value not in ("NORMAL", "FULL"):
        raise ConfigError(f"store url {url!r}: synchronous={value.lower()!r}; use normal or full")
    return value


def parse_sqlite_url(url: str) -> str:
    """The file path of ``sqlite:///path`` (``sqlite:////abs`` is absolute)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise ConfigError(f"store url {url!r}: expected sqlite:///relative/path.db or sqlite:////absolute/path.db")
    path = url[len(prefix):].split("?", 1)[0]
    if not path:
        raise ConfigError(f"store url {url!r}: no database path after sqlite:///")
    return path
