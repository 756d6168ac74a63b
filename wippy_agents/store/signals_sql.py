"""Task signals (migration 3): the SQL for both backends.

A signal is an append-only row ``(id, task_id, topic, payload, sent_at)``.
Receiving never changes it: the receiving task journals the id it took and
next asks for the first id after it, so ids must grow in commit order per
task. SQLite has one writer, so they do; on PostgreSQL a sequence value can
commit after a larger one, so ``signal_send`` first takes a transaction-scoped
advisory lock on the task, which orders the inserts for one task.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..errors import JournalCorrupt, TaskNotFound

__all__ = ["SQLITE_DDL", "POSTGRES_DDL", "sqlite_send", "sqlite_next", "PG_LOCK", "PG_SEND", "PG_NEXT", "decode"]

SQLITE_DDL = """
CREATE TABLE task_signals (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id   TEXT NOT NULL REFERENCES tasks (id),
    topic     TEXT NOT NULL,
    payload   TEXT NOT NULL,
    sent_at   REAL NOT NULL
);
CREATE INDEX task_signals_by_topic ON task_signals (task_id, topic, id);
"""

POSTGRES_DDL = """
CREATE TABLE task_signals (
    id        BIGSERIAL PRIMARY KEY,
    task_id   TEXT NOT NULL REFERENCES tasks (id),
    topic     TEXT NOT NULL,
    payload   TEXT NOT NULL,
    sent_at   DOUBLE PRECISION NOT NULL
);
CREATE INDEX task_signals_by_topic ON task_signals (task_id, topic, id);
"""


def _missing(task_id: str) -> TaskNotFound:
    return TaskNotFound(f"cannot signal task {task_id!r}: it does not exist", task_id=task_id)


def sqlite_send(db: sqlite3.Connection, task_id: str, topic: str, payload: str, now: float) -> int:
    try:
        cur = db.execute(
            "INSERT INTO task_signals (task_id, topic, payload, sent_at) VALUES (?, ?, ?, ?)",
            (task_id, topic, payload, now),
        )
    except sqlite3.IntegrityError as exc:
        if "FOREIGN KEY" in str(exc):
            raise _missing(task_id) from None
        raise
    return int(cur.lastrowid)


def sqlite_next(db: sqlite3.Connection, task_id: str, topic: str, after: int) -> tuple[int, Any] | None:
    row = db.execute(
        "SELECT id, payload FROM task_signals WHERE task_id = ? AND topic = ? AND id > ? ORDER BY id LIMIT 1",
        (task_id, topic, after),
    ).fetchone()
    return None if row is None else decode(row[0], row[1])


def decode(sid: Any, payload: str) -> tuple[int, Any]:
    try:
        return int(sid), json.loads(payload)
    except (TypeError, ValueError) as exc:
        raise JournalCorrupt(f"cannot decode task_signals row {sid!r}: payload is not valid JSON ({exc})",
                             table="task_signals", key=repr(sid)) from None


PG_LOCK = "SELECT pg_advisory_xact_lock(hashtext('wippy_signal:' || $1))"
PG_SEND = "INSERT INTO task_signals (task_id, topic, payload, sent_at) VALUES ($1, $2, $3, $4) RETURNING id"
PG_NEXT = "SELECT id, payload FROM task_signals WHERE task_id = $1 AND topic = $2 AND id > $3 ORDER BY id LIMIT 1"
