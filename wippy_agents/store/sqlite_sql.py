"""The SQLite store's transactions, as plain functions of a sqlite3 connection.

Each runs entirely on aiosqlite's worker thread (see ``sqlite.py``): it
executes, commits and decodes, so the event loop pays one hand-off. The
connection is in autocommit mode (``isolation_level=None``); multi-statement
writes take the write lock up front with ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Callable

from ..errors import StaleVersion, TaskNotFound
from .base import AuditRecord, StepRecord, TaskRecord, VersionRecord
from .codec import (
    STEP_COLUMNS,
    TASK_COLUMNS,
    TERMINAL_STATUSES,
    VERSION_COLUMNS,
    audit_from_row,
    encode_task_field,
    entries_from_rows,
    entry_from_row,
    step_from_row,
    task_from_row,
    task_params,
    version_from_row,
)
from .migrations import pending, statements
from .refusals import journal_refusal, task_refusal

_TERMINAL = ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES))


def _tx(db: sqlite3.Connection, fn: Callable[..., Any], *args: Any) -> Any:
    db.execute("BEGIN IMMEDIATE")
    try:
        out = fn(*args)
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return out


def _switch_to_wal(db: sqlite3.Connection, busy_ms: int) -> None:
    """``journal_mode = WAL``, retried: while another connection switches a fresh file,
    SQLite answers "database is locked" at once, without calling the busy handler."""
    deadline = time.monotonic() + busy_ms / 1000
    delay = 0.002
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)  # on the store's own thread, never the event loop
            delay = min(delay * 2, 0.05)


def setup(db: sqlite3.Connection, wal: bool, busy_ms: int, url: str, synchronous: str = "NORMAL") -> None:
    db.row_factory = sqlite3.Row
    db.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
    if wal:
        _switch_to_wal(db, busy_ms)
    db.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'FULL' else 'NORMAL'}")
    db.execute("PRAGMA foreign_keys = ON")

    def migrate() -> None:
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (number INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        applied = {r[0]: r[1] for r in db.execute("SELECT number, name FROM schema_migrations")}
        for m in pending(applied, url=url):
            for stmt in statements(m.sqlite):
                db.execute(stmt)
            db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (m.number, m.name, time.time()))

    _tx(db, migrate)


# -- registry ------------------------------------------------------------------
def registry_head(db: sqlite3.Connection) -> int:
    return db.execute("SELECT COALESCE(MAX(version), 0) FROM registry_versions").fetchone()[0]


def registry_append(db: sqlite3.Connection, row: tuple, ups: list, dels: list, audits: list,
                    current: tuple[list, list] = ([], [])) -> None:
    def run() -> None:
        head = registry_head(db)
        if row[0] != head + 1:
            raise StaleVersion(
                f"registry version {row[0]} cannot be stored: the head is {head}, so the next is {head + 1};"
                " rebase the changeset on the current version and retry", version=row[0], head=head)
        db.execute(f"INSERT INTO registry_versions ({', '.join(VERSION_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
        db.executemany(
            "INSERT INTO runtime_entries VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " entry = excluded.entry, version = excluded.version, updated_at = excluded.updated_at", ups)
        db.executemany("DELETE FROM runtime_entries WHERE id = ?", dels)
        db.executemany("INSERT INTO audit (at, actor, action, resource, decision, details)"
                       " VALUES (?, ?, ?, ?, ?, ?)", audits)
        # the current state follows the head only while it is in step with it
        if db.execute("UPDATE registry_current_head SET version = ? WHERE version = ?", (row[0], head)).rowcount:
            db.executemany("INSERT INTO registry_current VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                           " entry = excluded.entry, version = excluded.version", current[0])
            db.executemany("DELETE FROM registry_current WHERE id = ?", current[1])

    _tx(db, run)


def registry_current(db: sqlite3.Connection) -> tuple[int, list[dict[str, Any]]] | None:
    """``(version, entries)`` of the current state, or None when it is not in step with the head."""
    def run() -> tuple[int, list[dict[str, Any]]] | None:
        head = registry_head(db)
        kept = db.execute("SELECT version FROM registry_current_head").fetchone()[0]
        if kept != head:
            return None
        return head, entries_from_rows(db.execute("SELECT id, entry FROM registry_current"))

    db.execute("BEGIN")
    try:
        return run()
    finally:
        db.execute("COMMIT")


def registry_current_reset(db: sqlite3.Connection, version: int, rows: list) -> bool:
    """Replace the current state by ``rows`` (id, entry, version) if ``version`` is the head."""
    def run() -> bool:
        if registry_head(db) != version:
            return False
        db.execute("DELETE FROM registry_current")
        db.executemany("INSERT INTO registry_current VALUES (?, ?, ?)", rows)
        db.execute("UPDATE registry_current_head SET version = ?", (version,))
        return True

    return _tx(db, run)


def file_cache(db: sqlite3.Connection) -> dict[str, tuple[str, str]]:
    return {r[0]: (r[1], r[2]) for r in db.execute("SELECT path, key, entries FROM registry_file_cache")}


def file_cache_put(db: sqlite3.Connection, rows: list, gone: list) -> None:
    def run() -> None:
        db.executemany("INSERT INTO registry_file_cache VALUES (?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET"
                       " key = excluded.key, entries = excluded.entries, updated_at = excluded.updated_at", rows)
        db.executemany("DELETE FROM registry_file_cache WHERE path = ?", gone)

    _tx(db, run)


def registry_history(db: sqlite3.Connection, limit: int | None) -> list[VersionRecord]:
    rows = db.execute("SELECT * FROM registry_versions ORDER BY version DESC LIMIT ?",
                      (-1 if limit is None else limit,))
    return [version_from_row(r) for r in rows]


def registry_get_version(db: sqlite3.Connection, version: int) -> VersionRecord | None:
    row = db.execute("SELECT * FROM registry_versions WHERE version = ?", (version,)).fetchone()
    return None if row is None else version_from_row(row)


def runtime_entries(db: sqlite3.Connection) -> list[dict[str, Any]]:
    return [entry_from_row(r) for r in db.execute("SELECT id, entry FROM runtime_entries ORDER BY id")]


# -- audit ---------------------------------------------------------------------
def audit_append(db: sqlite3.Connection, rows: list) -> None:
    _tx(db, db.executemany,
        "INSERT INTO audit (at, actor, action, resource, decision, details) VALUES (?, ?, ?, ?, ?, ?)", rows)


def audit_list(db: sqlite3.Connection, limit: int, actor: str | None) -> list[AuditRecord]:
    if actor is None:
        rows = db.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
    else:
        rows = db.execute("SELECT * FROM audit WHERE actor = ? ORDER BY id DESC LIMIT ?", (actor, limit))
    return [audit_from_row(r) for r in rows]


# -- tasks ---------------------------------------------------------------------
_TASK_INSERT = (f"INSERT INTO tasks ({', '.join(TASK_COLUMNS)}) VALUES ({', '.join('?' * len(TASK_COLUMNS))})"
                " ON CONFLICT (id) DO NOTHING")


def task_create(db: sqlite3.Connection, task: TaskRecord, now: float) -> tuple[TaskRecord, bool]:
    params = task_params(task, now=now)

    def run() -> tuple[TaskRecord, bool]:
        created = db.execute(_TASK_INSERT, params).rowcount == 1
        return task_from_row(db.execute("SELECT * FROM tasks WHERE id = ?", (task.id,)).fetchone()), created

    return _tx(db, run)


def task_get(db: sqlite3.Connection, task_id: str) -> TaskRecord | None:
    row = db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return None if row is None else task_from_row(row)


def task_list(db: sqlite3.Connection, status: str | None, parent: str | None, limit: int) -> list[TaskRecord]:
    where = [clause for clause, value in (("status = ?", status), ("parent_id = ?", parent)) if value is not None]
    params = [value for value in (status, parent) if value is not None]
    sql = "SELECT * FROM tasks" + (f" WHERE {' AND '.join(where)}" if where else "")
    rows = db.execute(f"{sql} ORDER BY created_at DESC, id LIMIT ?", (*params, limit))
    return [task_from_row(r) for r in rows]


def task_update(db: sqlite3.Connection, task_id: str, node: str | None, epoch: int | None, fields: dict,
                now: float) -> TaskRecord:
    sets = [f"{name} = ?" for name in fields] + ["updated_at = ?"]
    params = [encode_task_field(n, v, task_id=task_id) for n, v in fields.items()] + [now, task_id]
    where = "id = ?"
    if node is not None:
        where += " AND owner = ?"
        params.append(node)
    if epoch is not None:
        where += " AND epoch = ?"
        params.append(epoch)
    row = db.execute(f"UPDATE tasks SET {', '.join(sets)} WHERE {where} RETURNING *", params).fetchone()
    if row is None:
        probe = db.execute("SELECT owner, epoch FROM tasks WHERE id = ?", (task_id,)).fetchone()
        raise task_refusal(task_id, node, probe, epoch=epoch)
    return task_from_row(row)


def task_claim(db: sqlite3.Connection, task_id: str, node: str, lease: float, now: float) -> TaskRecord | None:
    row = db.execute(
        "UPDATE tasks SET owner = ?, lease_expires_at = ?, updated_at = ?, epoch = epoch + 1,"
            " status = CASE WHEN status = 'pending' THEN 'running' ELSE status END"
        f" WHERE id = ? AND status NOT IN ({_TERMINAL})"
        " AND (owner IS NULL OR owner = ? OR lease_expires_at IS NULL OR lease_expires_at <= ?) RETURNING *",
        (node, now + lease, now, task_id, node, now)).fetchone()
    if row is not None:
        return task_from_row(row)
    if db.execute("SELECT 1 FROM tasks WHERE id = ?", (task_id,)).fetchone() is None:
        raise TaskNotFound(f"task {task_id!r} does not exist", task_id=task_id)
    return None


def _claimable(own: bool) -> str:
    own_sql = " OR owner = :node" if own else ""
    return ("status IN ('pending', 'running')"
            f" AND (owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at <= :now{own_sql})"
            " AND id NOT IN (SELECT value FROM json_each(:exclude))")


def task_claim_expired(db: sqlite3.Connection, node: str, lease: float, limit: int, own: bool,
                       now: float, exclude: str = "[]") -> list[TaskRecord]:
    """A read first, so an idle worker polling the queue never takes the write lock;
    then the claim under ``BEGIN IMMEDIATE`` (one writer: each task to exactly one node).
    ``exclude``: a JSON list of ids never to claim (the node's own live runs)."""
    args = {"node": node, "until": now + lease, "now": now, "limit": limit, "exclude": exclude}
    if db.execute(f"SELECT 1 FROM tasks WHERE {_claimable(own)} LIMIT 1", args).fetchone() is None:
        return []

    def run() -> list:
        return db.execute(
            "UPDATE tasks SET owner = :node, lease_expires_at = :until, updated_at = :now, epoch = epoch + 1,"
            " status = CASE WHEN status = 'pending' THEN 'running' ELSE status END"
            f" WHERE id IN (SELECT id FROM tasks WHERE {_claimable(own)} ORDER BY created_at, id LIMIT :limit)"
            " RETURNING *", args).fetchall()

    return sorted((task_from_row(r) for r in _tx(db, run)), key=lambda t: (t.created_at, t.id))


def task_heartbeat(db: sqlite3.Connection, node: str, ids: list[str], lease: float, epochs: dict | None,
                   now: float) -> list[str]:
    if epochs is None:
        marks = ", ".join("?" * len(ids))
        rows = db.execute(f"UPDATE tasks SET lease_expires_at = ? WHERE owner = ? AND id IN ({marks}) RETURNING id",
                          [now + lease, node, *ids]).fetchall()
    else:
        pairs = [(i, epochs[i]) for i in ids if i in epochs]
        if not pairs:
            return []
        marks = ", ".join("(?, ?)" for _ in pairs)
        rows = db.execute(f"UPDATE tasks SET lease_expires_at = ? WHERE owner = ? AND (id, epoch) IN (VALUES {marks})"
                          " RETURNING id", [now + lease, node, *(v for p in pairs for v in p)]).fetchall()
    held = {r[0] for r in rows}
    return [i for i in ids if i in held]


# -- journal -------------------------------------------------------------------
def journal_load(db: sqlite3.Connection, task_id: str) -> list[StepRecord]:
    return [step_from_row(r) for r in db.execute("SELECT * FROM journal WHERE task_id = ? ORDER BY seq", (task_id,))]


_COLS = ", ".join(STEP_COLUMNS)
_VALUES = ", ".join(f"?{i + 1}" for i in range(len(STEP_COLUMNS)))  # numbered: ?1 is reused as the task id
_FINISH = ("status = excluded.status, result = excluded.result, error = excluded.error,"
           " finished_at = excluded.finished_at, tokens = excluded.tokens, cost_usd = excluded.cost_usd,"
           " node = COALESCE(excluded.node, journal.node), attempt = MAX(journal.attempt, excluded.attempt)")
_RESTART = "started_at = excluded.started_at, node = excluded.node, attempt = journal.attempt + 1"
_PROBE = ("SELECT t.owner AS owner, t.epoch AS epoch, j.name AS name, j.status AS status FROM tasks t"
          " LEFT JOIN journal j ON j.task_id = t.id AND j.seq = ? WHERE t.id = ?")


def _journal_sql(finished: bool, guarded: bool, fenced: bool = False) -> str:
    n = len(STEP_COLUMNS)
    guard = "true"
    if guarded:
        fence = f" AND epoch = ?{n + 2}" if fenced else ""
        guard = f"EXISTS (SELECT 1 FROM tasks WHERE id = ?1 AND owner = ?{n + 1}{fence})"
    # A step is recorded at most once: only a 'started' row with the same name may be
    # finished (or started again, when an idempotent step is re-run after a crash).
    return (f"INSERT INTO journal ({_COLS}) SELECT {_VALUES} WHERE {guard}"
            f" ON CONFLICT (task_id, seq) DO UPDATE SET {_FINISH if finished else _RESTART}"
            " WHERE journal.status = 'started' AND journal.name = excluded.name")


_JOURNAL_SQL = {(f, g, e): _journal_sql(f, g, e) for f in (False, True) for g in (False, True)
                for e in (False, True) if g or not e}


def journal_write(db: sqlite3.Connection, params: tuple, node: str | None, epoch: int | None = None) -> None:
    """One step, one statement (autocommit): the insert, the lease and epoch check
    (fencing) and the at-most-once rule are all in its WHERE clauses; only a
    refusal reads again."""
    finished = params[3] != "started"
    try:
        if node is None:
            changed = db.execute(_JOURNAL_SQL[finished, False, False], params).rowcount
        elif epoch is None:
            changed = db.execute(_JOURNAL_SQL[finished, True, False], (*params, node)).rowcount
        else:
            changed = db.execute(_JOURNAL_SQL[finished, True, True], (*params, node, epoch)).rowcount
    except sqlite3.IntegrityError as exc:
        if "FOREIGN KEY" in str(exc):
            raise TaskNotFound(f"journal_write: task {params[0]!r} does not exist", task_id=params[0]) from None
        raise
    if changed != 1:
        step = {"task_id": params[0], "seq": params[1], "name": params[2]}
        raise journal_refusal(step, node, db.execute(_PROBE, (params[1], params[0])).fetchone(), epoch=epoch)


def journal_write_many(db: sqlite3.Connection, rows: list[tuple], node: str | None, epoch: int | None = None) -> None:
    """Several journal writes in one transaction: all land or none does."""
    _tx(db, lambda: [journal_write(db, params, node, epoch) for params in rows])


def journal_reopen(db: sqlite3.Connection, task_id: str, seq: int, node: str, epoch: int) -> bool:
    def run() -> bool:
        probe = db.execute("SELECT owner, epoch FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if probe is None or probe["owner"] != node or probe["epoch"] != epoch:
            raise task_refusal(task_id, node, probe, epoch=epoch)
        return db.execute(
            "UPDATE journal SET status = 'started', result = 'null', error = NULL, finished_at = NULL"
            " WHERE task_id = ? AND seq = ? AND status = 'error'", (task_id, seq)).rowcount == 1

    return _tx(db, run)
