"""The PostgreSQL store (asyncpg pool), for several nodes on several machines.

``postgresql://user[:pw]@host[:port]/db?schema=NAME``: ``schema`` is ours, not
libpq's: it is stripped from the DSN, created if missing, and made the
connections' ``search_path``, so several apps (or tests) share one database.
Other nodes learn of registry versions through ``NOTIFY`` on a channel named
after the schema; ``registry_changes`` ``LISTEN``s on its own connection.
Claims use ``FOR UPDATE SKIP LOCKED``; lease times use the database clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from typing import Any, AsyncIterator, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from ..errors import ConfigError, StaleVersion, StoreError, TaskNotFound, WippyError
from . import nodes_sql
from . import postgres_sql as q
from . import signals_sql
from .base import AuditRecord, NodeRecord, StepRecord, TaskRecord, VersionRecord
from .codec import (
    append_args,
    audit_from_row,
    audit_rows,
    check_task_fields,
    dumps,
    encode_task_field,
    entries_from_rows,
    entry_from_row,
    safe_url,
    step_from_row,
    step_params,
    task_from_row,
    task_params,
    version_from_row,
)
from .migrations import pending, statements
from .pg_writer import PgJournalWriter
from .refusals import journal_refusal, task_refusal

__all__ = ["PostgresStore"]

log = logging.getLogger(__name__)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")
_FAILURES = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)  # OSError covers TimeoutError


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


class PostgresStore:
    """The ``Store`` on a PostgreSQL database (optionally one schema of it).

    Every method raises ``StoreError`` naming the URL (password hidden) and the
    operation when the database fails or is unreachable.
    """

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8, connect_timeout: float = 10.0) -> None:
        self.url = url
        self.safe_url = safe_url(url)
        parts = urlsplit(url)
        params = parse_qsl(parts.query, keep_blank_values=True)
        self.schema = next((v for k, v in params if k == "schema"), None)
        if self.schema is not None and not _IDENT.match(self.schema):
            raise ConfigError(f"store url {self.safe_url!r}: schema {self.schema!r} is not a plain identifier")
        self._dsn = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in params if k != "schema"])))
        # Named per schema so an operator (or a test) can tell our sessions apart.
        self._settings = {"application_name": f"wippy-agents {self.schema or 'public'}"}
        if self.schema:
            self._settings["search_path"] = f'"{self.schema}"'
        self._channel = f"wippy_registry_{self.schema or 'public'}"
        self._pool_args = dict(min_size=min_size, max_size=max_size, timeout=connect_timeout)
        self._pool: asyncpg.Pool | None = None
        self._closed = asyncio.Event()
        self._feeds: set[asyncio.Event] = set()
        self._own_versions: set[int] = set()  # appended here, for reading the head after (re)connecting
        self._token = uuid.uuid4().hex  # names this store's NOTIFYs
        self.writer = PgJournalWriter(self._guard, _journal_rows)  # group commit of journal rows

    # -- lifecycle -----------------------------------------------------------
    async def open(self) -> None:
        """Connect the pool and apply pending migrations (under an advisory lock)."""
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(self._dsn, server_settings=self._settings, **self._pool_args)
        except _FAILURES as exc:
            raise StoreError(f"cannot connect to store {self.safe_url}: {_one_line(exc)}") from None
        self._closed.clear()
        try:
            async with self._guard("open (migrations)") as conn, conn.transaction():
                await self._migrate(conn)
        except BaseException:
            await self.close()
            raise

    async def _migrate(self, conn: asyncpg.Connection) -> None:
        # Two nodes starting together must not both apply migration N.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"wippy_migrations:{self._channel}")
        if self.schema:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations"
                           " (number INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")
        applied = {r["number"]: r["name"] for r in await conn.fetch("SELECT number, name FROM schema_migrations")}
        for m in pending(applied, url=self.safe_url):
            for stmt in statements(m.postgres):
                await conn.execute(stmt)
            await conn.execute("INSERT INTO schema_migrations VALUES ($1, $2, $3)", m.number, m.name, time.time())
            log.info("store %s: applied migration %d %s", self.safe_url, m.number, m.name)

    async def close(self) -> None:
        """Close the pool; ``registry_changes`` iterators end. Idempotent."""
        self._closed.set()
        if self._pool is not None:
            await self.writer.close()
        for wake in self._feeds:
            wake.set()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> PostgresStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def _guard(self, op: str) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; database failures become one-line ``StoreError``s."""
        pool = self._pool
        if pool is None:
            raise StoreError(f"store {self.safe_url}: {op} failed: the store is closed", op=op)
        try:
            async with pool.acquire() as conn:
                yield conn
        except WippyError:
            raise
        except _FAILURES as exc:
            raise StoreError(f"store {self.safe_url}: {op} failed: {_one_line(exc)}", op=op) from exc

    async def _fetch(self, op: str, sql: str, *args: Any) -> list[Any]:
        async with self._guard(op) as conn:
            return await conn.fetch(sql, *args)

    # -- registry ------------------------------------------------------------
    async def registry_head(self) -> int:
        return (await self._fetch("registry_head", q.HEAD))[0][0]

    async def registry_append(
        self,
        record: VersionRecord,
        *,
        runtime_upserts: list[dict[str, Any]] = (),
        runtime_deletes: list[str] = (),
        audit: list[AuditRecord] = (),
    ) -> None:
        row, ups, dels, audits, (cur_ups, cur_dels) = append_args(record, runtime_upserts, runtime_deletes, audit)
        async with self._guard("registry_append") as conn, conn.transaction():
            head = await conn.fetchval(q.HEAD)
            if record.version != head + 1:
                raise _stale(record.version, head)
            try:
                await conn.execute(q.VERSION_INSERT, *row)
            except asyncpg.UniqueViolationError:  # another node committed this version meanwhile
                raise _stale(record.version, record.version) from None
            for sql, rows in ((q.ENTRY_UPSERT, ups), (q.ENTRY_DELETE, dels), (q.AUDIT_INSERT, audits)):
                if rows:
                    await conn.executemany(sql, rows)
            # the current state follows the head only while it is in step with it
            if (await conn.execute(q.CURRENT_STEP, record.version, head)).endswith(" 1"):
                for sql, rows in ((q.CURRENT_UPSERT, cur_ups), (q.CURRENT_DELETE, cur_dels)):
                    if rows:
                        await conn.executemany(sql, rows)
            # Delivered to listeners only when the transaction commits.
            await conn.execute("SELECT pg_notify($1, $2)", self._channel, f"{record.version} {self._token}")
        self._own_versions.add(record.version)

    async def registry_current(self) -> tuple[int, list[dict[str, Any]]] | None:
        async with self._guard("registry_current") as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            head = await conn.fetchval(q.HEAD)
            if await conn.fetchval(q.CURRENT_KEPT) != head:
                return None
            return head, entries_from_rows(await conn.fetch(q.CURRENT_ALL))

    async def registry_current_reset(self, version: int, entries: list[dict[str, Any]]) -> bool:
        rows = [(e["id"], dumps(e, what=f"registry entry {e['id']!r}"), version) for e in entries]
        async with self._guard("registry_current_reset") as conn, conn.transaction():
            await conn.execute("LOCK TABLE registry_current_head IN EXCLUSIVE MODE")
            if await conn.fetchval(q.HEAD) != version:
                return False
            await conn.execute("DELETE FROM registry_current")
            if rows:
                await conn.executemany(q.CURRENT_INSERT, rows)
            await conn.execute("UPDATE registry_current_head SET version = $1", version)
            return True

    async def registry_file_cache(self) -> dict[str, tuple[str, str]]:
        return {r[0]: (r[1], r[2]) for r in await self._fetch("registry_file_cache", q.FILE_CACHE)}

    async def registry_file_cache_put(self, rows: list[tuple[str, str, str]], gone: list[str] = ()) -> None:
        now = time.time()
        async with self._guard("registry_file_cache_put") as conn, conn.transaction():
            if rows:
                await conn.executemany(q.FILE_CACHE_PUT, [(p, k, e, now) for p, k, e in rows])
            if gone:
                await conn.executemany(q.FILE_CACHE_DELETE, [(g,) for g in gone])

    async def registry_history(self, *, limit: int | None = None) -> list[VersionRecord]:
        return [version_from_row(r) for r in await self._fetch("registry_history", q.HISTORY, limit)]

    async def registry_get_version(self, version: int) -> VersionRecord | None:
        rows = await self._fetch("registry_get_version", q.GET_VERSION, version)
        return version_from_row(rows[0]) if rows else None

    async def runtime_entries(self) -> list[dict[str, Any]]:
        return [entry_from_row(r) for r in await self._fetch("runtime_entries", q.ENTRIES)]

    async def registry_changes(self, *, poll_interval: float = 0.5, since: int | None = None) -> AsyncIterator[int]:
        """``LISTEN`` for versions appended by other stores after ``since`` (default:
        the head when iteration starts) and yield the new version. A lost listening
        connection is re-opened every ``poll_interval`` seconds and the head read
        again, so nothing is missed. Ends when this store closes."""
        wake = asyncio.Event()
        heard: list[str] = []  # NOTIFY payloads "<version> <writer token>"
        self._feeds.add(wake)
        last = since
        try:
            while not self._closed.is_set():
                conn = await self._listen(wake, heard, poll_interval)
                if conn is None:
                    return
                try:
                    # Listening before reading the head: a version committed in between is
                    # seen by both, never by neither.
                    head = await conn.fetchval(q.HEAD)
                    if last is None:
                        last = head
                    elif head > last:
                        foreign = any(v not in self._own_versions for v in range(last + 1, head + 1))
                        last = head
                        if foreign:
                            yield head
                    while not self._closed.is_set() and not conn.is_closed():
                        await wake.wait()
                        wake.clear()
                        # The writer's token, not our own bookkeeping, says whose version it
                        # is: a notification may arrive before our append returns.
                        news = [v for v, writer in map(_parse_notice, heard) if writer != self._token and v > last]
                        heard.clear()
                        if news:
                            last = max(news)
                            yield last
                except _FAILURES as exc:
                    log.warning("store %s: registry change feed lost its connection: %s", self.safe_url, _one_line(exc))
                finally:
                    await _close_quietly(conn)
        finally:
            self._feeds.discard(wake)

    async def _listen(self, wake: asyncio.Event, heard: list[str], retry: float) -> asyncpg.Connection | None:
        """A dedicated connection LISTENing on our channel; None once the store closed."""

        def notice(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            heard.append(payload)
            wake.set()

        settings = {**self._settings, "application_name": self._settings["application_name"] + " listen"}
        while not self._closed.is_set():
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn, server_settings=settings, timeout=self._pool_args["timeout"])
                conn.add_termination_listener(lambda _c: wake.set())
                await conn.add_listener(self._channel, notice)
                return conn
            except _FAILURES as exc:
                log.warning("store %s: cannot listen for registry changes: %s", self.safe_url, _one_line(exc))
                if conn is not None:
                    await _close_quietly(conn)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), max(retry, 0.05))
        return None

    # -- audit ---------------------------------------------------------------
    async def audit_append(self, records: list[AuditRecord]) -> None:
        if records:
            rows = audit_rows(records)
            async with self._guard("audit_append") as conn, conn.transaction():
                await conn.executemany(q.AUDIT_INSERT, rows)

    async def audit_list(self, *, limit: int = 100, actor: str | None = None) -> list[AuditRecord]:
        if actor is None:
            rows = await self._fetch("audit_list", q.AUDIT_ALL, limit)
        else:
            rows = await self._fetch("audit_list", q.AUDIT_BY_ACTOR, limit, actor)
        return [audit_from_row(r) for r in rows]

    # -- tasks ---------------------------------------------------------------
    async def task_create(self, task: TaskRecord) -> tuple[TaskRecord, bool]:
        params = task_params(task, now=time.time())
        async with self._guard("task_create") as conn:
            row = await conn.fetchrow(q.TASK_INSERT, *params)
            if row is not None:
                return task_from_row(row), True
            return task_from_row(await conn.fetchrow(q.TASK_GET, task.id)), False

    async def task_get(self, task_id: str) -> TaskRecord | None:
        rows = await self._fetch("task_get", q.TASK_GET, task_id)
        return task_from_row(rows[0]) if rows else None

    async def task_list(self, *, status: str | None = None, parent: str | None = None,
                        limit: int = 100) -> list[TaskRecord]:
        rows = await self._fetch("task_list", q.TASK_LIST, limit, status, parent)
        return [task_from_row(r) for r in rows]

    async def task_update(
        self, task_id: str, *, node: str | None = None, epoch: int | None = None, **fields: Any
    ) -> TaskRecord:
        """Set fields; with ``node`` (and ``epoch``) only while that claim holds the lease (else ``LeaseLost``)."""
        check_task_fields(task_id, fields)
        args = [encode_task_field(n, v, task_id=task_id) for n, v in fields.items()]
        sets = [f"{name} = ${i + 1}" for i, name in enumerate(fields)]
        args += [time.time(), task_id]
        sql = f"UPDATE tasks SET {', '.join(sets + [f'updated_at = ${len(args) - 1}'])} WHERE id = ${len(args)}"
        if node is not None:
            args.append(node)
            sql += f" AND owner = ${len(args)}"
        if epoch is not None:
            args.append(int(epoch))
            sql += f" AND epoch = ${len(args)}"
        async with self._guard("task_update") as conn:
            row = await conn.fetchrow(sql + " RETURNING *", *args)
            if row is None:
                raise task_refusal(task_id, node, await conn.fetchrow(q.TASK_EXISTS_OWNER, task_id), epoch=epoch)
            return task_from_row(row)

    async def task_claim(self, task_id: str, node: str, lease_seconds: float) -> TaskRecord | None:
        async with self._guard("task_claim") as conn:
            row = await conn.fetchrow(q.TASK_CLAIM, task_id, node, float(lease_seconds))
            if row is not None:
                return task_from_row(row)
            if await conn.fetchrow(q.TASK_EXISTS_OWNER, task_id) is None:
                raise TaskNotFound(f"task {task_id!r} does not exist", task_id=task_id)
            return None

    async def task_claim_expired(
        self, node: str, lease_seconds: float, *, limit: int = 10, include_own: bool = False,
        exclude: Sequence[str] = (),
    ) -> list[TaskRecord]:
        """``include_own=True`` also takes tasks this node owns (recovery after a restart)."""
        rows = await self._fetch("task_claim_expired", q.claim_expired(include_own), node, float(lease_seconds), limit,
                                 list(exclude))
        return sorted((task_from_row(r) for r in rows), key=lambda t: (t.created_at, t.id))

    async def task_heartbeat(
        self, node: str, task_ids: list[str], lease_seconds: float, *, epochs: dict[str, int] | None = None
    ) -> list[str]:
        if not task_ids:
            return []
        if epochs is None:
            rows = await self._fetch("task_heartbeat", q.HEARTBEAT, node, list(task_ids), float(lease_seconds))
        else:
            ids = [i for i in task_ids if i in epochs]
            if not ids:
                return []
            rows = await self._fetch("task_heartbeat", q.HEARTBEAT_FENCED, node, ids, float(lease_seconds),
                                     [int(epochs[i]) for i in ids])
        held = {r["id"] for r in rows}
        return [i for i in task_ids if i in held]

    # -- nodes (migration 7) ---------------------------------------------------
    async def node_register(self, node: NodeRecord, *, ttl: float) -> NodeRecord:
        async with self._guard("node_register") as conn, conn.transaction():
            await conn.execute(nodes_sql.PG_LOCK, node.name)
            await conn.execute(nodes_sql.PG_PURGE)
            row = await conn.fetchrow(nodes_sql.PG_GET, node.name)
            if row is not None:
                holder = nodes_sql.node_from_row(row)
                now = await conn.fetchval(nodes_sql.PG_NOW)
                if holder.started != node.started and holder.heartbeat_at > now - ttl:
                    raise nodes_sql.name_taken(holder, now - holder.heartbeat_at)
            row = await conn.fetchrow(nodes_sql.PG_INSERT, node.name, node.host, node.pid, node.started,
                                      int(node.stable))
            return nodes_sql.node_from_row(row)

    async def node_heartbeat(self, name: str, *, started: str) -> bool:
        async with self._guard("node_heartbeat") as conn:
            return await conn.execute(nodes_sql.PG_HEARTBEAT, name, started) == "UPDATE 1"

    async def node_get(self, name: str) -> NodeRecord | None:
        rows = await self._fetch("node_get", nodes_sql.PG_GET, name)
        return nodes_sql.node_from_row(rows[0]) if rows else None

    async def node_list(self, *, host: str | None = None) -> list[NodeRecord]:
        if host is None:
            rows = await self._fetch("node_list", nodes_sql.PG_LIST_ALL)
        else:
            rows = await self._fetch("node_list", nodes_sql.PG_LIST_HOST, host)
        return [nodes_sql.node_from_row(r) for r in rows]

    async def node_forget(self, name: str, *, started: str) -> int:
        async with self._guard("node_forget") as conn, conn.transaction():
            if await conn.execute(nodes_sql.PG_FORGET_NODE, name, started) != "DELETE 1":
                return 0
            status = await conn.execute(nodes_sql.PG_FREE_TASKS, name)
            return int(status.rsplit(" ", 1)[-1])

    # -- journal -------------------------------------------------------------
    async def journal_load(self, task_id: str) -> list[StepRecord]:
        return [step_from_row(r) for r in await self._fetch("journal_load", q.JOURNAL_LOAD, task_id)]

    async def journal_write(self, step: StepRecord, *, node: str | None = None, epoch: int | None = None) -> None:
        """Group commit (``pg_writer.py``): the steps of one loop tick in one statement, one round trip."""
        await self.writer.write([step_params(step)], node, epoch)

    async def journal_write_many(
        self, steps: list[StepRecord], *, node: str | None = None, epoch: int | None = None
    ) -> None:
        if not steps:
            return
        await self.writer.write([step_params(s) for s in steps], node, epoch)

    async def journal_reopen(self, task_id: str, seq: int, *, node: str, epoch: int) -> bool:
        async with self._guard("journal_reopen") as conn, conn.transaction():
            probe = await conn.fetchrow(q.TASK_LOCK_OWNER, task_id)
            if probe is None or probe["owner"] != node or probe["epoch"] != epoch:
                raise task_refusal(task_id, node, probe, epoch=epoch)
            return await conn.execute(q.REOPEN, task_id, seq) == "UPDATE 1"

    # -- task signals (migration 3) --------------------------------------------
    async def signal_send(self, task_id: str, topic: str, payload: Any) -> int:
        """Persist a signal for a task; returns its id (ids grow in commit order per task)."""
        data = dumps(payload, what=f"signal {topic!r} to task {task_id!r}")
        async with self._guard("signal_send") as conn, conn.transaction():
            await conn.execute(signals_sql.PG_LOCK, task_id)
            try:
                return int(await conn.fetchval(signals_sql.PG_SEND, task_id, topic, data, time.time()))
            except asyncpg.ForeignKeyViolationError:
                raise TaskNotFound(f"cannot signal task {task_id!r}: it does not exist", task_id=task_id) from None

    async def signal_next(self, task_id: str, topic: str, *, after: int) -> tuple[int, Any] | None:
        """The first signal for (task, topic) with an id above ``after``, or None."""
        rows = await self._fetch("signal_next", signals_sql.PG_NEXT, task_id, topic, after)
        return signals_sql.decode(rows[0]["id"], rows[0]["payload"]) if rows else None


async def _journal_rows(conn: asyncpg.Connection, rows: list[tuple], node: str | None, epoch: int | None) -> None:
    """One statement per row (the caller holds the transaction): a unit naming one step twice."""
    for params in rows:
        await _journal_one(conn, params, node, epoch)


async def _journal_one(conn: asyncpg.Connection, params: tuple, node: str | None, epoch: int | None) -> None:
    step = StepRecord(task_id=params[0], seq=params[1], name=params[2], status=params[3])
    fenced = node is not None and epoch is not None
    sql = q.JOURNAL_WRITE[step.status != "started", node is not None, fenced]
    guard = () if node is None else (node, int(epoch)) if fenced else (node,)
    try:
        status = await conn.execute(sql, *params, *guard)
    except asyncpg.ForeignKeyViolationError:
        raise TaskNotFound(f"journal_write: task {step.task_id!r} does not exist", task_id=step.task_id) from None
    if status != "INSERT 0 1":
        probe = await conn.fetchrow(q.JOURNAL_PROBE, step.task_id, step.seq)
        raise journal_refusal({"task_id": step.task_id, "seq": step.seq, "name": step.name}, node, probe, epoch=epoch)


def _stale(version: int, head: int) -> StaleVersion:
    return StaleVersion(f"registry version {version} cannot be stored: the head is {head}, so the next is {head + 1};"
                        " rebase the changeset on the current version and retry", version=version, head=head)


def _parse_notice(payload: str) -> tuple[int, str]:
    version, _, writer = payload.partition(" ")
    try:
        return int(version), writer
    except ValueError:  # not ours: a foreign NOTIFY on our channel means nothing
        return 0, ""


async def _close_quietly(conn: asyncpg.Connection) -> None:
    try:
        await conn.close(timeout=2)
    except _FAILURES:
        conn.terminate()
