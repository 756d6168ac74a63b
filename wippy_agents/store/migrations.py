"""Numbered, append-only schema migrations for both store dialects.

Each migration is ``(number, name, sqlite_sql, postgres_sql)``; the two
dialects sit side by side so a change to one is reviewed against the other.
Never edit or renumber a released migration: add the next number instead.
``open()`` applies the pending ones in order inside one transaction and
records them in ``schema_migrations``; a database that knows a migration this
code does not (a newer wippy-agents wrote it) or names one differently is
refused with ``StoreError``.

JSON-like fields are stored as TEXT in both dialects (not ``jsonb``): the
bytes we wrote come back unchanged (key order kept), one codec serves both
backends, and the store never queries inside them. Timestamps are float
seconds since the epoch (``REAL`` / ``double precision``).

Statements are separated by ``;`` at the end of a line (see ``statements``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import StoreError
from . import nodes_sql, signals_sql

__all__ = ["Migration", "MIGRATIONS", "statements", "pending"]


@dataclass(frozen=True, kw_only=True)
class Migration:
    """One numbered schema change, in both dialects."""

    number: int
    name: str
    sqlite: str
    postgres: str


def statements(sql: str) -> list[str]:
    """Split a migration script into statements (``;`` ending a line)."""
    parts = [p.strip() for p in sql.replace("\r\n", "\n").split(";\n")]
    return [p.rstrip(";").strip() for p in parts if p.strip()]


_STATUS = "'pending', 'running', 'succeeded', 'failed', 'cancelled', 'stranded'"

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        number=1,
        name="registry_and_audit",
        sqlite="""
CREATE TABLE registry_versions (
    version     INTEGER PRIMARY KEY CHECK (version > 0),
    created_at  REAL NOT NULL,
    author      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    changes     TEXT NOT NULL
);
CREATE TABLE runtime_entries (
    id          TEXT PRIMARY KEY,
    entry       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          REAL NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    decision    TEXT NOT NULL CHECK (decision IN ('allow', 'deny', 'approved', 'rejected')),
    details     TEXT NOT NULL
);
CREATE INDEX audit_by_actor ON audit (actor, id);
""",
        postgres="""
CREATE TABLE registry_versions (
    version     BIGINT PRIMARY KEY CHECK (version > 0),
    created_at  DOUBLE PRECISION NOT NULL,
    author      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    changes     TEXT NOT NULL
);
CREATE TABLE runtime_entries (
    id          TEXT PRIMARY KEY,
    entry       TEXT NOT NULL,
    version     BIGINT NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL
);
CREATE TABLE audit (
    id          BIGSERIAL PRIMARY KEY,
    at          DOUBLE PRECISION NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    decision    TEXT NOT NULL CHECK (decision IN ('allow', 'deny', 'approved', 'rejected')),
    details     TEXT NOT NULL
);
CREATE INDEX audit_by_actor ON audit (actor, id);
""",
    ),
    Migration(
        number=2,
        name="tasks_and_journal",
        sqlite=f"""
CREATE TABLE tasks (
    id                TEXT PRIMARY KEY,
    kind              TEXT NOT NULL,
    target            TEXT NOT NULL,
    input             TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ({_STATUS})),
    owner             TEXT,
    lease_expires_at  REAL,
    registry_version  INTEGER NOT NULL,
    result            TEXT NOT NULL,
    error             TEXT,
    parent_id         TEXT,
    created_at        REAL NOT NULL,
    updated_at        REAL NOT NULL
);
CREATE INDEX tasks_by_status ON tasks (status, lease_expires_at);
CREATE INDEX tasks_by_created ON tasks (created_at);
CREATE TABLE journal (
    task_id      TEXT NOT NULL REFERENCES tasks (id),
    seq          INTEGER NOT NULL CHECK (seq >= 0),
    name         TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('started', 'ok', 'error')),
    result       TEXT NOT NULL,
    error        TEXT,
    started_at   REAL NOT NULL,
    finished_at  REAL,
    tokens       INTEGER NOT NULL,
    cost_usd     REAL NOT NULL,
    PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;
""",
        postgres=f"""
CREATE TABLE tasks (
    id                TEXT PRIMARY KEY,
    kind              TEXT NOT NULL,
    target            TEXT NOT NULL,
    input             TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ({_STATUS})),
    owner             TEXT,
    lease_expires_at  DOUBLE PRECISION,
    registry_version  BIGINT NOT NULL,
    result            TEXT NOT NULL,
    error             TEXT,
    parent_id         TEXT,
    created_at        DOUBLE PRECISION NOT NULL,
    updated_at        DOUBLE PRECISION NOT NULL
);
CREATE INDEX tasks_by_status ON tasks (status, lease_expires_at);
CREATE INDEX tasks_by_created ON tasks (created_at);
CREATE TABLE journal (
    task_id      TEXT NOT NULL REFERENCES tasks (id),
    seq          INTEGER NOT NULL CHECK (seq >= 0),
    name         TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('started', 'ok', 'error')),
    result       TEXT NOT NULL,
    error        TEXT,
    started_at   DOUBLE PRECISION NOT NULL,
    finished_at  DOUBLE PRECISION,
    tokens       BIGINT NOT NULL,
    cost_usd     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (task_id, seq)
);
""",
    ),
    Migration(number=3, name="task_signals", sqlite=signals_sql.SQLITE_DDL, postgres=signals_sql.POSTGRES_DDL),
    # SQLite only: a WITHOUT ROWID table keeps whole rows in the primary-key b-tree, so a
    # step of ~1 KB spills to overflow pages (~4.9 KB on disk per row); a rowid table keeps
    # the journal's file size proportional to what the steps returned.
    Migration(
        number=4,
        name="journal_rowid_table",
        sqlite="""
CREATE TABLE journal_v4 (
    task_id      TEXT NOT NULL REFERENCES tasks (id),
    seq          INTEGER NOT NULL CHECK (seq >= 0),
    name         TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('started', 'ok', 'error')),
    result       TEXT NOT NULL,
    error        TEXT,
    started_at   REAL NOT NULL,
    finished_at  REAL,
    tokens       INTEGER NOT NULL,
    cost_usd     REAL NOT NULL,
    PRIMARY KEY (task_id, seq)
);
INSERT INTO journal_v4 SELECT task_id, seq, name, status, result, error, started_at, finished_at, tokens, cost_usd
    FROM journal;
DROP TABLE journal;
ALTER TABLE journal_v4 RENAME TO journal;
""",
        postgres="",
    ),
    # The event history (``wippy tasks show``): which node ran a step and which attempt
    # it is (a started step run again after a crash or ``--retry`` counts up), and the
    # children of a task found by index instead of a scan.
    Migration(
        number=5,
        name="journal_node_and_attempt",
        sqlite="""
ALTER TABLE journal ADD COLUMN node TEXT;
ALTER TABLE journal ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
CREATE INDEX tasks_by_parent ON tasks (parent_id, created_at);
""",
        postgres="""
ALTER TABLE journal ADD COLUMN node TEXT;
ALTER TABLE journal ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
CREATE INDEX tasks_by_parent ON tasks (parent_id, created_at);
""",
    ),
    # The registry's current state kept beside its history (start-up and rollback
    # read it instead of replaying every version), and a parse cache of entry files
    # keyed by a content hash (a restart re-parses only the files that changed).
    Migration(
        number=6,
        name="registry_current_and_file_cache",
        sqlite="""
CREATE TABLE registry_current (
    id          TEXT PRIMARY KEY,
    entry       TEXT NOT NULL,
    version     INTEGER NOT NULL
);
CREATE TABLE registry_current_head (
    one         INTEGER PRIMARY KEY CHECK (one = 1),
    version     INTEGER NOT NULL
);
INSERT INTO registry_current_head SELECT 1, -1;
CREATE TABLE registry_file_cache (
    path        TEXT PRIMARY KEY,
    key         TEXT NOT NULL,
    entries     TEXT NOT NULL,
    updated_at  REAL NOT NULL
);
""",
        postgres="""
CREATE TABLE registry_current (
    id          TEXT PRIMARY KEY,
    entry       TEXT NOT NULL,
    version     BIGINT NOT NULL
);
CREATE TABLE registry_current_head (
    one         INTEGER PRIMARY KEY CHECK (one = 1),
    version     BIGINT NOT NULL
);
INSERT INTO registry_current_head SELECT 1, -1;
CREATE TABLE registry_file_cache (
    path        TEXT PRIMARY KEY,
    key         TEXT NOT NULL,
    entries     TEXT NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL
);
""",
    ),
    # Node identity (who holds a name, on which host, as which process) and lease
    # epochs for fencing; versions record their node and host.
    Migration(number=7, name="nodes_and_epochs", sqlite=nodes_sql.SQLITE_DDL, postgres=nodes_sql.POSTGRES_DDL),
)


def pending(applied: dict[int, str], *, url: str) -> list[Migration]:
    """The migrations still to apply, given ``{number: name}`` already applied.

    Raises ``StoreError`` when the database holds a migration this code does
    not know, or one whose name differs (an edited, not appended, history).
    """
    known = {m.number: m for m in MIGRATIONS}
    for number, name in sorted(applied.items()):
        mine = known.get(number)
        if mine is None:
            raise StoreError(
                f"store {url}: schema migration {number} ({name!r}) is newer than this "
                f"wippy-agents knows (up to {MIGRATIONS[-1].number}); upgrade wippy-agents",
                migration=number,
            )
        if mine.name != name:
            raise StoreError(
                f"store {url}: schema migration {number} is {name!r} in the database but "
                f"{mine.name!r} here; migrations are append-only, use a fresh store",
                migration=number,
            )
    return [m for m in MIGRATIONS if m.number not in applied]
