"""SQL text of the PostgreSQL store (asyncpg ``$n`` placeholders).

Lease times use the database clock (``NOW``), so nodes on several machines
agree on when a lease expired even if their own clocks drift.
"""

from __future__ import annotations

from .codec import STEP_COLUMNS, TASK_COLUMNS, TERMINAL_STATUSES, VERSION_COLUMNS

NOW = "extract(epoch from clock_timestamp())::double precision"
_TERMINAL = ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES))

HEAD = "SELECT COALESCE(MAX(version), 0) FROM registry_versions"
VERSION_INSERT = f"INSERT INTO registry_versions ({', '.join(VERSION_COLUMNS)}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
ENTRY_UPSERT = ("INSERT INTO runtime_entries VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET"
                " entry = excluded.entry, version = excluded.version, updated_at = excluded.updated_at")
ENTRY_DELETE = "DELETE FROM runtime_entries WHERE id = $1"
CURRENT_STEP = "UPDATE registry_current_head SET version = $1 WHERE version = $2"
CURRENT_UPSERT = ("INSERT INTO registry_current VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET"
                  " entry = excluded.entry, version = excluded.version")
CURRENT_DELETE = "DELETE FROM registry_current WHERE id = $1"
CURRENT_KEPT = "SELECT version FROM registry_current_head"
CURRENT_ALL = "SELECT id, entry FROM registry_current"
CURRENT_INSERT = "INSERT INTO registry_current VALUES ($1, $2, $3)"
FILE_CACHE = "SELECT path, key, entries FROM registry_file_cache"
FILE_CACHE_PUT = ("INSERT INTO registry_file_cache VALUES ($1, $2, $3, $4) ON CONFLICT (path) DO UPDATE SET"
                  " key = excluded.key, entries = excluded.entries, updated_at = excluded.updated_at")
FILE_CACHE_DELETE = "DELETE FROM registry_file_cache WHERE path = $1"
AUDIT_INSERT = "INSERT INTO audit (at, actor, action, resource, decision, details) VALUES ($1, $2, $3, $4, $5, $6)"
HISTORY = "SELECT * FROM registry_versions ORDER BY version DESC LIMIT $1"
GET_VERSION = "SELECT * FROM registry_versions WHERE version = $1"
ENTRIES = "SELECT id, entry FROM runtime_entries ORDER BY id"
AUDIT_ALL = "SELECT * FROM audit ORDER BY id DESC LIMIT $1"
AUDIT_BY_ACTOR = "SELECT * FROM audit WHERE actor = $2 ORDER BY id DESC LIMIT $1"

TASK_INSERT = (f"INSERT INTO tasks ({', '.join(TASK_COLUMNS)})"
               f" VALUES ({', '.join(f'${i + 1}' for i in range(len(TASK_COLUMNS)))})"
               " ON CONFLICT (id) DO NOTHING RETURNING *")
TASK_GET = "SELECT * FROM tasks WHERE id = $1"
TASK_EXISTS_OWNER = "SELECT owner, epoch FROM tasks WHERE id = $1"
TASK_LIST = ("SELECT * FROM tasks WHERE ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR parent_id = $3) "
             "ORDER BY created_at DESC, id LIMIT $1")
TASK_CLAIM = (f"UPDATE tasks SET owner = $2, lease_expires_at = {NOW} + $3, updated_at = {NOW}, epoch = epoch + 1,"
              " status = CASE WHEN status = 'pending' THEN 'running' ELSE status END"
              f" WHERE id = $1 AND status NOT IN ({_TERMINAL})"
              f" AND (owner IS NULL OR owner = $2 OR lease_expires_at IS NULL OR lease_expires_at <= {NOW})"
              " RETURNING *")


def claim_expired(include_own: bool) -> str:
    own = " OR owner = $1" if include_own else ""
    # SKIP LOCKED: concurrent claimers each lock a disjoint set of rows instead of
    # queueing behind one another; the outer UPDATE then owns exactly those rows.
    return (f"WITH c AS (SELECT id FROM tasks WHERE status IN ('pending', 'running')"
            f" AND (owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at <= {NOW}{own})"
            " AND NOT (id = ANY($4::text[]))"
            " ORDER BY created_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)"
            f" UPDATE tasks t SET owner = $1, lease_expires_at = {NOW} + $2, updated_at = {NOW}, epoch = t.epoch + 1,"
            " status = CASE WHEN t.status = 'pending' THEN 'running' ELSE t.status END"
            " FROM c WHERE t.id = c.id RETURNING t.*")


HEARTBEAT = (f"UPDATE tasks SET lease_expires_at = {NOW} + $3"
             " WHERE owner = $1 AND id = ANY($2::text[]) RETURNING id")
HEARTBEAT_FENCED = (f"UPDATE tasks SET lease_expires_at = {NOW} + $3 WHERE owner = $1"
                    " AND (id, epoch) IN (SELECT * FROM unnest($2::text[], $4::bigint[])) RETURNING id")
REOPEN = ("UPDATE journal SET status = 'started', result = 'null', error = NULL, finished_at = NULL"
          " WHERE task_id = $1 AND seq = $2 AND status = 'error'")
TASK_LOCK_OWNER = "SELECT owner, epoch FROM tasks WHERE id = $1 FOR UPDATE"

JOURNAL_LOAD = "SELECT * FROM journal WHERE task_id = $1 ORDER BY seq"
JOURNAL_PROBE = ("SELECT t.owner AS owner, t.epoch AS epoch, j.name AS name, j.status AS status FROM tasks t"
                 " LEFT JOIN journal j ON j.task_id = t.id AND j.seq = $2 WHERE t.id = $1")
_CASTS = ("text", "integer", "text", "text", "text", "text", "float8", "float8", "bigint", "float8", "text", "integer")
_FINISH = ("status = excluded.status, result = excluded.result, error = excluded.error,"
           " finished_at = excluded.finished_at, tokens = excluded.tokens, cost_usd = excluded.cost_usd,"
           " node = COALESCE(excluded.node, journal.node), attempt = GREATEST(journal.attempt, excluded.attempt)")
_RESTART = "started_at = excluded.started_at, node = excluded.node, attempt = journal.attempt + 1"


def _journal(finished: bool, guarded: bool, fenced: bool = False) -> str:
    values = ", ".join(f"${i + 1}::{cast}" for i, cast in enumerate(_CASTS))
    # FOR SHARE holds the task row until commit, so a concurrent claim by another
    # node waits for this write (or this write sees the new owner/epoch and refuses).
    fence = f" AND epoch = ${len(_CASTS) + 2}" if fenced else ""
    guard = (f"EXISTS (SELECT 1 FROM tasks WHERE id = $1 AND owner = ${len(_CASTS) + 1}{fence} FOR SHARE)"
             if guarded else "true")
    return (f"INSERT INTO journal ({', '.join(STEP_COLUMNS)}) SELECT {values} WHERE {guard}"
            f" ON CONFLICT (task_id, seq) DO UPDATE SET {_FINISH if finished else _RESTART}"
            " WHERE journal.status = 'started' AND journal.name = excluded.name")


JOURNAL_WRITE = {(f, g, e): _journal(f, g, e) for f in (False, True) for g in (False, True)
                 for e in (False, True) if g or not e}
