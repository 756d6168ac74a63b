"""The store seam: records and the ``Store`` Protocol every backend implements.

Everything durable goes through this interface: registry versions, entries
created at run time, the audit trail, tasks, their leases and the step journal.
Backends (``sqlite``, ``postgres``) are chosen by URL with ``open_store``.

All JSON-like fields (``changes``, ``input``, ``result`` ...) are plain Python
data (dict/list/str/int/float/bool/None); the backend encodes them.
Timestamps are ``float`` seconds since the epoch (``time.time()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Literal, Protocol, Sequence, runtime_checkable

__all__ = [
    "VersionRecord",
    "AuditRecord",
    "TaskRecord",
    "StepRecord",
    "NodeRecord",
    "TaskStatus",
    "StepStatus",
    "Store",
]

TaskStatus = Literal["pending", "running", "succeeded", "failed", "cancelled", "stranded"]
StepStatus = Literal["started", "ok", "error"]


@dataclass(frozen=True, kw_only=True)
class VersionRecord:
    """One registry version: the changeset that produced it and who made it."""

    version: int
    created_at: float
    author: str
    reason: str
    # [{"op": "create"|"update"|"delete", "id": "ns:name", "entry": {...} | None,
    #   "before": {...} | None}]  -- enough to show, diff and roll back.
    changes: list[dict[str, Any]]
    node: str = ""  # the node (and host) whose process made it; "" for versions older than migration 7
    host: str = ""


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """One line of the audit trail: a write, a denial, an approval."""

    at: float
    actor: str  # "agent:app.agents:assistant/task-id", "cli:root", "watcher", ...
    action: str  # "registry.write", "tool.call", ...
    resource: str
    decision: Literal["allow", "deny", "approved", "rejected"]
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None  # assigned by the store


@dataclass(frozen=True, kw_only=True)
class TaskRecord:
    """A durable task; ``id`` is the idempotency key."""

    id: str
    kind: str  # "workflow", "agent", ... (what code resumes it)
    target: str  # the entry id it runs, e.g. "app.agents:assistant"
    input: Any
    status: TaskStatus = "pending"
    owner: str | None = None  # node name holding the lease
    lease_expires_at: float | None = None
    registry_version: int = 0
    result: Any = None
    error: dict[str, Any] | None = None  # WippyError.to_dict()
    parent_id: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    # Grows by one with every claim: guarded writes name the epoch they hold (fencing).
    epoch: int = 0


@dataclass(frozen=True, kw_only=True)
class NodeRecord:
    """A process holding a node name on the store (migration 7).

    ``started`` is the process's start token (``wippy_agents.tasks.nodes``):
    with ``host`` and ``pid`` it tells a dead owner from a live one on the
    same host, and a reused pid from the process that had it.
    """

    name: str
    host: str
    pid: int
    started: str
    stable: bool = False  # named with --node / node: (else unique per process)
    registered_at: float = 0.0
    heartbeat_at: float = 0.0


@dataclass(frozen=True, kw_only=True)
class StepRecord:
    """One journaled step ``(task_id, seq)``; ``result``/``error`` set when finished."""

    task_id: str
    seq: int
    name: str
    status: StepStatus
    result: Any = None
    error: dict[str, Any] | None = None
    started_at: float = 0.0
    finished_at: float | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    node: str | None = None  # the node that ran (or is running) it
    # 1 for a step's first run; the store counts it up each time a started step is
    # started again (an idempotent step re-run after a crash, ``tasks resume --retry``)
    attempt: int = 1
    # ``result`` as JSON text, when the writer already encoded it (exactly what the
    # codec's ``dumps`` gives): a step's result is then encoded once, not twice.
    # Write-only: rows read back from a store never carry it.
    result_json: str | None = field(default=None, repr=False, compare=False)


@runtime_checkable
class Store(Protocol):
    """The durable store. Every method is one round trip to the database.

    Raises ``StoreError`` when the database fails or is unreachable,
    ``StaleVersion`` from ``registry_append`` when ``version`` is not head + 1.
    """

    url: str

    async def open(self) -> None:
        """Connect and apply pending numbered migrations."""

    async def close(self) -> None: ...

    # -- registry ---------------------------------------------------------
    async def registry_head(self) -> int:
        """The newest version number, 0 when there is none."""

    async def registry_append(
        self,
        record: VersionRecord,
        *,
        runtime_upserts: list[dict[str, Any]] = (),
        runtime_deletes: list[str] = (),
        audit: list[AuditRecord] = (),
    ) -> None:
        """Atomically store version ``record.version`` (must be head + 1), update the
        run-time entries table (entries created by agents/CLI, keyed by id) and
        append audit records; raises ``StaleVersion`` if another writer got there
        first. On PostgreSQL it also NOTIFYs other nodes."""

    async def registry_history(self, *, limit: int | None = None) -> list[VersionRecord]:
        """Newest first."""

    async def registry_get_version(self, version: int) -> VersionRecord | None: ...

    async def runtime_entries(self) -> list[dict[str, Any]]:
        """Entries created at run time, to load again after a restart."""

    async def registry_current(self) -> tuple[int, list[dict[str, Any]]] | None:
        """``(head, entry records)``: the state at the head, kept up to date by
        ``registry_append``; None when it is not in step (a store written before it existed)."""

    async def registry_current_reset(self, version: int, entries: list[dict[str, Any]]) -> bool:
        """Set the current state (computed by replay) if ``version`` is still the head."""

    async def registry_file_cache(self) -> dict[str, tuple[str, str]]:
        """``path -> (content key, entries JSON)``: entry files as last parsed."""

    async def registry_file_cache_put(self, rows: list[tuple[str, str, str]], gone: list[str] = ()) -> None:
        """Store ``(path, key, entries JSON)`` rows; forget the ``gone`` paths."""

    def registry_changes(self, *, poll_interval: float = 0.5, since: int | None = None) -> AsyncIterator[int]:
        """Yield the new head version each time another writer appends one
        (PostgreSQL LISTEN/NOTIFY; polling on SQLite). ``since``: report versions
        after this one (pass the version you loaded, so nothing committed before
        you subscribed is missed); default: the head when iteration starts.
        Ends when the store closes."""

    # -- audit ------------------------------------------------------------
    async def audit_append(self, records: list[AuditRecord]) -> None: ...

    async def audit_list(self, *, limit: int = 100, actor: str | None = None) -> list[AuditRecord]:
        """Newest first."""

    # -- tasks ------------------------------------------------------------
    async def task_create(self, task: TaskRecord) -> tuple[TaskRecord, bool]:
        """Insert unless the id exists; returns (the stored task, created?)."""

    async def task_get(self, task_id: str) -> TaskRecord | None: ...

    async def task_list(self, *, status: str | None = None, parent: str | None = None,
                        limit: int = 100) -> list[TaskRecord]:
        """Newest first (by ``created_at``), optionally only one status and/or the children of ``parent``."""

    async def task_update(
        self, task_id: str, *, node: str | None = None, epoch: int | None = None, **fields: Any
    ) -> TaskRecord:
        """Set the given TaskRecord fields (any but ``id``/``created_at``/``epoch``;
        ``updated_at`` is set to now); raises ``TaskNotFound``, ``UsageError``
        for a field or status that does not exist. With ``node`` given, only
        while that node owns the task, and with ``epoch`` also only while the
        lease is that claim's (else ``LeaseLost``)."""

    async def task_claim(self, task_id: str, node: str, lease_seconds: float) -> TaskRecord | None:
        """Take the lease of one task if it is free, expired or already ours;
        None if another live node holds it or the task has finished
        (succeeded/failed/cancelled). Atomic; the epoch grows by one (the
        returned record holds the new one); raises ``TaskNotFound``."""

    async def task_claim_expired(
        self, node: str, lease_seconds: float, *, limit: int = 10, include_own: bool = False,
        exclude: Sequence[str] = (),
    ) -> list[TaskRecord]:
        """Atomically claim up to ``limit`` pending/running tasks whose lease is
        missing or expired — queued work (``pending``, no owner) included —
        (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on
        SQLite): each is claimed by exactly one node, its epoch grown by one.
        Oldest first. ``include_own=True`` also takes tasks ``node`` still
        owns (recovery after a restart under a stable name). Tasks in
        ``exclude`` (the node's own live runs) are never claimed: a new epoch
        would fence out the run that holds them."""

    async def task_heartbeat(
        self, node: str, task_ids: list[str], lease_seconds: float, *, epochs: dict[str, int] | None = None
    ) -> list[str]:
        """Extend our leases; returns the ids whose lease we still hold. With
        ``epochs`` (id -> the epoch of our claim) a lease re-claimed since is
        not extended."""

    # -- nodes (migration 7) ----------------------------------------------
    async def node_register(self, node: NodeRecord, *, ttl: float) -> NodeRecord:
        """Hold ``node.name`` for this process: insert its row, or replace one whose
        heartbeat is older than ``ttl`` seconds (or of the same incarnation).
        Raises ``NameTaken`` while another process's row is fresh. Returns the row."""

    async def node_heartbeat(self, name: str, *, started: str) -> bool:
        """Mark the node alive now; False when its row is gone or names another
        incarnation (someone else holds the name now)."""

    async def node_get(self, name: str) -> NodeRecord | None: ...

    async def node_list(self, *, host: str | None = None) -> list[NodeRecord]:
        """All node rows (of one host), by name."""

    async def node_forget(self, name: str, *, started: str) -> int:
        """Drop the row of that incarnation (a clean stop, or a process found dead)
        and free the leases its node held, in one transaction; returns how
        many tasks were freed (0 when the row was not that incarnation's)."""

    # -- signals to tasks (persisted, so none is lost while a task is down) --
    async def signal_send(self, task_id: str, topic: str, payload: Any) -> int:
        """Persist a signal for a task; returns its id (ids grow in commit order
        per task). Raises ``TaskNotFound`` for an unknown task."""

    async def signal_next(self, task_id: str, topic: str, *, after: int) -> tuple[int, Any] | None:
        """The first signal ``(id, payload)`` for (task, topic) with id > ``after``,
        or None. Reading does not consume it: the task journals the id it took."""

    # -- journal ----------------------------------------------------------
    async def journal_load(self, task_id: str) -> list[StepRecord]:
        """All steps of a task, by seq."""

    async def journal_write(self, step: StepRecord, *, node: str | None = None, epoch: int | None = None) -> None:
        """Insert or finish one step in one round trip. Writing a finished step
        for a (task_id, seq) that is already finished raises ``StoreError``
        (a step is never recorded twice). With ``node`` given, the write
        only succeeds while that node still owns the task's lease (else
        ``TaskError``: the lease was lost).

        Precisely: ``StepAlreadyRecorded`` (a ``StoreError``) for a finished
        (task_id, seq), ``NondeterminismError`` when the seq was started under
        another name, ``LeaseLost`` (a ``TaskError``) when ``node`` no longer
        owns the task (an expired lease nobody else claimed is still ours:
        claims are atomic), ``TaskNotFound`` for an unknown task. A
        ``started`` row may be written again (an idempotent step re-run).
        With ``epoch`` as well, the write is fenced: it lands only while the
        task's epoch is that one, in the same statement as the insert.

        This is the one write path of the journal (group commit builds on it)."""

    async def journal_write_many(
        self, steps: list[StepRecord], *, node: str | None = None, epoch: int | None = None
    ) -> None:
        """Several ``journal_write``s in one transaction and one round trip: all
        are recorded or none is (same rules and errors). Lets a task engine
        record "step N finished" together with "step N+1 started"."""

    async def journal_reopen(self, task_id: str, seq: int, *, node: str, epoch: int) -> bool:
        """Turn the finished ``error`` row at ``seq`` back into ``started`` (``wippy
        tasks resume ID --retry`` of a failed task), fenced like a write; False
        when that row is not an error row. Raises ``LeaseLost``."""
