"""Encoding records to rows and decoding rows back, shared by both backends.

Rows are anything indexable by column name (``sqlite3.Row``, ``asyncpg.Record``).
A row that fails to decode raises ``StoreError`` (``JournalCorrupt`` for the
``tasks`` and ``journal`` tables) naming the table and the key, never a bare
``JSONDecodeError`` from deep inside a caller.
"""

from __future__ import annotations

import json
import time
from typing import Any, get_args
from urllib.parse import urlsplit, urlunsplit

from ..errors import InvalidPayload, JournalCorrupt, StoreError, UsageError
from .base import AuditRecord, StepRecord, StepStatus, TaskRecord, TaskStatus, VersionRecord

__all__ = [
    "dumps",
    "current_rows",
    "safe_url",
    "version_from_row",
    "audit_from_row",
    "task_from_row",
    "step_from_row",
    "entry_from_row",
    "entries_from_rows",
    "TASK_STATUSES",
    "TERMINAL_STATUSES",
    "TASK_UPDATABLE",
    "append_args",
    "audit_rows",
]

TASK_STATUSES: frozenset[str] = frozenset(get_args(TaskStatus))
STEP_STATUSES: frozenset[str] = frozenset(get_args(StepStatus))
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
# Fields task_update may set; id and created_at are fixed at creation.
TASK_UPDATABLE: frozenset[str] = frozenset(
    {"kind", "target", "input", "status", "owner", "lease_expires_at", "registry_version", "result", "error", "parent_id"}
)
_JSON_TASK_FIELDS = frozenset({"input", "result", "error"})


# One encoder, built once: ``json.dumps`` with keyword options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(value: Any, *, what: str) -> str:
    """JSON text for a stored field; raises ``InvalidPayload`` for non-JSON data."""
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidPayload(f"cannot store {what} as JSON: {exc}", what=what) from None


def encode_task_field(name: str, value: Any, *, task_id: str) -> Any:
    """The column value for one ``TaskRecord`` field (JSON fields encoded)."""
    if name in _JSON_TASK_FIELDS:
        return dumps(value, what=f"task {task_id!r} {name}")
    return value


def safe_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable store url>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _loads(text: Any, *, table: str, key: Any, column: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise _corrupt(table, key, f"column {column!r} is not valid JSON ({exc})") from None


def _corrupt(table: str, key: Any, why: str) -> StoreError:
    cls = JournalCorrupt if table in ("tasks", "journal") else StoreError
    return cls(f"cannot decode {table} row {key!r}: {why}", table=table, key=repr(key))


def version_from_row(row: Any) -> VersionRecord:
    key = row["version"]
    changes = _loads(row["changes"], table="registry_versions", key=key, column="changes")
    if not isinstance(changes, list):
        raise _corrupt("registry_versions", key, "column 'changes' is not a list")
    return VersionRecord(
        version=int(key), created_at=float(row["created_at"]), author=row["author"],
        reason=row["reason"], changes=changes, node=row["node"] or "", host=row["host"] or "",
    )


def audit_from_row(row: Any) -> AuditRecord:
    key = row["id"]
    details = _loads(row["details"], table="audit", key=key, column="details")
    if not isinstance(details, dict):
        raise _corrupt("audit", key, "column 'details' is not an object")
    return AuditRecord(
        id=int(key), at=float(row["at"]), actor=row["actor"], action=row["action"],
        resource=row["resource"], decision=row["decision"], details=details,
    )


def entry_from_row(row: Any) -> dict[str, Any]:
    key = row["id"]
    entry = _loads(row["entry"], table="runtime_entries", key=key, column="entry")
    if not isinstance(entry, dict):
        raise _corrupt("runtime_entries", key, "column 'entry' is not an object")
    return entry


def entries_from_rows(rows: Any, *, table: str = "registry_current") -> list[dict[str, Any]]:
    """``entry_from_row`` of many rows with one JSON parse (a registry's current state is
    thousands of rows); a row that does not decode on its own is named as ``entry_from_row`` does."""
    rows = list(rows)
    texts = [r["entry"] for r in rows]
    if all(type(t) is str for t in texts):
        try:
            out = json.loads("[" + ",".join(texts) + "]")
        except ValueError:
            out = None
        if (isinstance(out, list) and len(out) == len(rows)
                and all(type(e) is dict and e.get("id") == r["id"] for e, r in zip(out, rows))):
            return out
    return [_entry_of(r, table) for r in rows]


def _entry_of(row: Any, table: str) -> dict[str, Any]:
    key = row["id"]
    entry = _loads(row["entry"], table=table, key=key, column="entry")
    if not isinstance(entry, dict):
        raise _corrupt(table, key, "column 'entry' is not an object")
    return entry


def task_from_row(row: Any) -> TaskRecord:
    key = row["id"]
    status = row["status"]
    if status not in TASK_STATUSES:
        raise _corrupt("tasks", key, f"unknown status {status!r}")
    error = _loads(row["error"], table="tasks", key=key, column="error")
    if error is not None and not isinstance(error, dict):
        raise _corrupt("tasks", key, "column 'error' is not an object")
    lease = row["lease_expires_at"]
    return TaskRecord(
        id=key, kind=row["kind"], target=row["target"],
        input=_loads(row["input"], table="tasks", key=key, column="input"),
        status=status, owner=row["owner"],
        lease_expires_at=None if lease is None else float(lease),
        registry_version=int(row["registry_version"]),
        result=_loads(row["result"], table="tasks", key=key, column="result"),
        error=error, parent_id=row["parent_id"],
        created_at=float(row["created_at"]), updated_at=float(row["updated_at"]),
        epoch=int(row["epoch"]),
    )


def step_from_row(row: Any) -> StepRecord:
    key = (row["task_id"], row["seq"])
    status = row["status"]
    if status not in STEP_STATUSES:
        raise _corrupt("journal", key, f"unknown status {status!r}")
    error = _loads(row["error"], table="journal", key=key, column="error")
    if error is not None and not isinstance(error, dict):
        raise _corrupt("journal", key, "column 'error' is not an object")
    finished = row["finished_at"]
    return StepRecord(
        task_id=key[0], seq=int(key[1]), name=row["name"], status=status,
        result=_loads(row["result"], table="journal", key=key, column="result"),
        error=error, started_at=float(row["started_at"]),
        finished_at=None if finished is None else float(finished),
        tokens=int(row["tokens"]), cost_usd=float(row["cost_usd"]),
        node=row["node"], attempt=int(row["attempt"]),
    )


def step_params(step: StepRecord) -> tuple[Any, ...]:
    """Journal column values in table order, JSON fields encoded."""
    if step.status not in STEP_STATUSES:
        raise InvalidPayload(f"step {step.seq} of task {step.task_id!r}: unknown status {step.status!r}")
    result = step.result_json
    if result is None:
        result = dumps(step.result, what=f"step {step.seq} of task {step.task_id!r} result")
    return (
        step.task_id, step.seq, step.name, step.status, result,
        None if step.error is None else dumps(step.error, what=f"step {step.seq} of task {step.task_id!r} error"),
        step.started_at, step.finished_at, step.tokens, step.cost_usd, step.node, step.attempt,
    )


def task_params(task: TaskRecord, *, now: float) -> tuple[Any, ...]:
    """Task column values in table order; zero timestamps become ``now``."""
    if task.status not in TASK_STATUSES:
        raise InvalidPayload(f"task {task.id!r}: unknown status {task.status!r}")
    return (
        task.id, task.kind, task.target,
        dumps(task.input, what=f"task {task.id!r} input"),
        task.status, task.owner, task.lease_expires_at, task.registry_version,
        dumps(task.result, what=f"task {task.id!r} result"),
        None if task.error is None else dumps(task.error, what=f"task {task.id!r} error"),
        task.parent_id, task.created_at or now, task.updated_at or now, task.epoch,
    )


def check_task_fields(task_id: str, fields: dict[str, Any]) -> None:
    """Raise ``UsageError`` for a ``task_update`` field that cannot be set."""
    bad = sorted(set(fields) - TASK_UPDATABLE)
    if bad:
        raise UsageError(
            f"task_update({task_id!r}): cannot set {', '.join(bad)}; settable: {', '.join(sorted(TASK_UPDATABLE))}"
        )
    if "status" in fields and fields["status"] not in TASK_STATUSES:
        raise UsageError(f"task_update({task_id!r}): unknown status {fields['status']!r}")
    if fields.get("error") is not None and not isinstance(fields["error"], dict):
        raise UsageError(f"task_update({task_id!r}): error must be a dict (WippyError.to_dict()) or None")


TASK_COLUMNS = (
    "id", "kind", "target", "input", "status", "owner", "lease_expires_at", "registry_version",
    "result", "error", "parent_id", "created_at", "updated_at", "epoch",
)
VERSION_COLUMNS = ("version", "created_at", "author", "reason", "changes", "node", "host")
STEP_COLUMNS = (
    "task_id", "seq", "name", "status", "result", "error", "started_at", "finished_at", "tokens", "cost_usd",
    "node", "attempt",
)


def append_args(
    record: VersionRecord, upserts: Any, deletes: Any, audit: Any
) -> tuple[Any, ...]:
    """Encode everything before the hand-off, so bad data never opens a transaction.

    Returns ``(version row, runtime upserts, runtime deletes, audit rows,
    (current-state upserts, current-state deletes))``.
    """
    now = time.time()
    changes_json, cur_ups, cur_dels = _encode_changes(record)
    row = (record.version, record.created_at or now, record.author, record.reason, changes_json, record.node,
           record.host)
    ups = []
    for entry in upserts:
        entry_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(entry_id, str) or not entry_id:
            raise UsageError(f"registry_append: a runtime entry has no string 'id': {entry!r:.120}")
        ups.append((entry_id, dumps(entry, what=f"runtime entry {entry_id!r}"), record.version, now))
    return row, ups, [(d,) for d in deletes], audit_rows(audit), (cur_ups, cur_dels)


def current_rows(record: VersionRecord) -> tuple[list[tuple[Any, ...]], list[tuple[str]]]:
    """``(upserts (id, entry, version), deletes (id,))`` of ``registry_current`` for one version."""
    return _encode_changes(record)[1:]


def _encode_changes(record: VersionRecord) -> tuple[str, list[tuple[Any, ...]], list[tuple[str]]]:
    """The changes' JSON and the current-state rows, each entry encoded once (a
    change of the registry's shape ``{op, id, entry, before}`` is put together
    around its entries' JSON; anything else is encoded as it is)."""
    what = f"registry version {record.version} changes"
    parts, ups, dels = [], [], []
    for change in record.changes:
        if not isinstance(change, dict) or "entry" not in change:
            parts.append(dumps(change, what=what))
            continue
        entry = change["entry"]
        entry_json = dumps(entry, what=what)
        op, key, before = change.get("op"), change.get("id"), change.get("before", _ABSENT)
        if len(change) == 4 and type(op) is str and type(key) is str and before is not _ABSENT:
            before_json = "null" if before is None else dumps(before, what=what)
            parts.append(f'{{"op":{_str_json(op)},"id":{_str_json(key)},"entry":{entry_json},"before":{before_json}}}')
        else:
            fields = [dumps(str(k), what=what) + ":" + (entry_json if k == "entry" else dumps(v, what=what))
                      for k, v in change.items()]
            parts.append("{" + ",".join(fields) + "}")
        if "id" not in change:
            continue
        if entry is None:
            dels.append((change["id"],))
        elif isinstance(entry, dict):
            ups.append((change["id"], entry_json, record.version))
    return "[" + ",".join(parts) + "]", ups, dels


_ABSENT = object()
_str_json = json.encoder.encode_basestring  # a str as ``_ENCODER`` writes it (ensure_ascii=False)


def audit_rows(records: Any) -> list[tuple[Any, ...]]:
    """Rows of audit records; a details mapping shared by several records is encoded once."""
    encoded: dict[int, tuple[Any, str]] = {}  # id -> (the details, kept alive so the id stays theirs; JSON)
    rows = []
    for r in records:
        hit = encoded.get(id(r.details))
        if hit is None:
            hit = encoded[id(r.details)] = (r.details, dumps(r.details, what=f"audit details of {r.action!r} on {r.resource!r}"))
        rows.append((r.at or time.time(), r.actor, r.action, r.resource, r.decision, hit[1]))
    return rows
