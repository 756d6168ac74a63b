"""Nodes and lease epochs (migration 7): the DDL and SQL for both backends.

A node row ``(name, host, pid, started, stable, registered_at, heartbeat_at)``
says which process holds a node name: ``started`` is that process's start
token, so a pid reused by another process is never taken for the owner. A
name is held while its heartbeat is fresh (younger than the caller's ``ttl``).

``tasks.epoch`` grows by one on every claim. Every guarded write (journal
row, status change, heartbeat) names the epoch it holds, so a node paused
past its lease and woken after a takeover finds its writes refused even when
the task went back to a node of the same name. Versions record the node and
host that made them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

from ..errors import NameTaken
from .base import NodeRecord

__all__ = [
    "SQLITE_DDL", "POSTGRES_DDL", "node_from_row", "name_taken",
    "sqlite_register", "sqlite_heartbeat", "sqlite_get", "sqlite_list", "sqlite_forget",
    "PG_GET", "PG_LIST_ALL", "PG_LIST_HOST", "PG_PURGE", "PG_INSERT", "PG_HEARTBEAT", "PG_FORGET_NODE",
    "PG_FREE_TASKS",
]

SQLITE_DDL = """
ALTER TABLE tasks ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE registry_versions ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE registry_versions ADD COLUMN host TEXT NOT NULL DEFAULT '';
CREATE INDEX tasks_by_owner ON tasks (owner);
CREATE TABLE nodes (
    name           TEXT PRIMARY KEY,
    host           TEXT NOT NULL,
    pid            INTEGER NOT NULL,
    started        TEXT NOT NULL,
    stable         INTEGER NOT NULL,
    registered_at  REAL NOT NULL,
    heartbeat_at   REAL NOT NULL
);
CREATE INDEX nodes_by_host ON nodes (host);
"""

POSTGRES_DDL = """
ALTER TABLE tasks ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE registry_versions ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE registry_versions ADD COLUMN host TEXT NOT NULL DEFAULT '';
CREATE INDEX tasks_by_owner ON tasks (owner);
CREATE TABLE nodes (
    name           TEXT PRIMARY KEY,
    host           TEXT NOT NULL,
    pid            BIGINT NOT NULL,
    started        TEXT NOT NULL,
    stable         INTEGER NOT NULL,
    registered_at  DOUBLE PRECISION NOT NULL,
    heartbeat_at   DOUBLE PRECISION NOT NULL
);
CREATE INDEX nodes_by_host ON nodes (host);
"""

# Rows of processes that died without a word and were never reaped (another host's)
# are dropped after a day: a name is never held by a row that old.
PURGE_AFTER = 86400.0


def node_from_row(row: Any) -> NodeRecord:
    return NodeRecord(name=row["name"], host=row["host"], pid=int(row["pid"]), started=row["started"],
                      stable=bool(row["stable"]), registered_at=float(row["registered_at"]),
                      heartbeat_at=float(row["heartbeat_at"]))


def name_taken(holder: NodeRecord, age: float) -> NameTaken:
    return NameTaken(
        f"node name {holder.name!r} is in use by a live process (pid {holder.pid} on {holder.host!r}, last seen "
        f"{age:.1f}s ago); give this process another --node name, or stop that one first",
        node=holder.name, host=holder.host, pid=holder.pid)


def _params(node: NodeRecord, now: float) -> tuple:
    return (node.name, node.host, node.pid, node.started, int(node.stable), now, now)


# -- SQLite ----------------------------------------------------------------------
def sqlite_register(db: sqlite3.Connection, node: NodeRecord, ttl: float, now: float) -> NodeRecord:
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("DELETE FROM nodes WHERE heartbeat_at < ?", (now - PURGE_AFTER,))
        row = db.execute("SELECT * FROM nodes WHERE name = ?", (node.name,)).fetchone()
        if row is not None:
            holder = node_from_row(row)
            if holder.started != node.started and holder.heartbeat_at > now - ttl:
                raise name_taken(holder, now - holder.heartbeat_at)
        db.execute("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?, ?, ?, ?)", _params(node, now))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return replace(node, registered_at=now, heartbeat_at=now)


def sqlite_heartbeat(db: sqlite3.Connection, name: str, started: str, now: float) -> bool:
    cur = db.execute("UPDATE nodes SET heartbeat_at = ? WHERE name = ? AND started = ?", (now, name, started))
    return cur.rowcount == 1


def sqlite_get(db: sqlite3.Connection, name: str) -> NodeRecord | None:
    row = db.execute("SELECT * FROM nodes WHERE name = ?", (name,)).fetchone()
    return None if row is None else node_from_row(row)


def sqlite_list(db: sqlite3.Connection, host: str | None) -> list[NodeRecord]:
    if host is None:
        rows = db.execute("SELECT * FROM nodes ORDER BY name")
    else:
        rows = db.execute("SELECT * FROM nodes WHERE host = ? ORDER BY name", (host,))
    return [node_from_row(r) for r in rows]


def sqlite_forget(db: sqlite3.Connection, name: str, started: str) -> int:
    """Drop the node row of that incarnation and free the leases it held; the tasks freed."""
    db.execute("BEGIN IMMEDIATE")
    try:
        gone = db.execute("DELETE FROM nodes WHERE name = ? AND started = ?", (name, started)).rowcount
        freed = 0
        if gone:
            freed = db.execute(
                "UPDATE tasks SET lease_expires_at = NULL WHERE owner = ? AND status IN ('pending', 'running')",
                (name,)).rowcount
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return freed


# -- PostgreSQL (asyncpg $n; times from the database clock) -------------------------
_NOW = "extract(epoch from clock_timestamp())::double precision"
PG_GET = "SELECT * FROM nodes WHERE name = $1"
PG_LIST_ALL = "SELECT * FROM nodes ORDER BY name"
PG_LIST_HOST = "SELECT * FROM nodes WHERE host = $1 ORDER BY name"
PG_PURGE = f"DELETE FROM nodes WHERE heartbeat_at < {_NOW} - {PURGE_AFTER}"
PG_LOCK = "SELECT pg_advisory_xact_lock(hashtext('wippy_node:' || $1))"
PG_NOW = f"SELECT {_NOW}"
PG_INSERT = (f"INSERT INTO nodes VALUES ($1, $2, $3, $4, $5, {_NOW}, {_NOW}) ON CONFLICT (name) DO UPDATE SET"
             " host = excluded.host, pid = excluded.pid, started = excluded.started, stable = excluded.stable,"
             " registered_at = excluded.registered_at, heartbeat_at = excluded.heartbeat_at RETURNING *")
PG_HEARTBEAT = f"UPDATE nodes SET heartbeat_at = {_NOW} WHERE name = $1 AND started = $2"
PG_FORGET_NODE = "DELETE FROM nodes WHERE name = $1 AND started = $2"
PG_FREE_TASKS = ("UPDATE tasks SET lease_expires_at = NULL WHERE owner = $1"
                 " AND status IN ('pending', 'running')")
