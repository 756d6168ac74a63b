"""TaskEngine: start, run, wait for, cancel, resume and recover durable tasks.

Example::

    engine = TaskEngine(store, node_name="local", lease_seconds=15, heartbeat_seconds=5)
    engine.register_kind("greet", greet)          # async def greet(ctx) -> JSON data
    task = await engine.start("greet", "app:greet", {"name": "Ada"}, task_id="greet-ada")
    print(await engine.wait(task.id, timeout=10))
    await engine.close()

A task runs on the node that holds its lease: the heartbeat keeps it, the
claimer takes tasks whose lease expired (a dead node's) and resumes them from
their journal. Runs are owned by the engine (an asyncio task each, or a
process on the runtime ``Node`` when one is given): ``close()`` ends them all.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, Awaitable, Callable

from ..errors import (
    LeaseLost,
    StoreError,
    TaskCancelled,
    TaskError,
    TaskNotFound,
    TaskTimeout,
    UsageError,
    error_from_dict,
)
from ..store.base import StepRecord, Store, TaskRecord
from .context import RunState, TaskContext
from .runs import execute
from .hosting import RunHost, make_host
from .journal import to_json_data
from .leases import LeaseKeeper
from .resume import prepare_resume
from .retry import NO_RETRY, STORE_RETRY, RetryPolicy, retry_store
from .signals import SignalBox

__all__ = ["TaskEngine", "Runner", "FINAL_STATUSES"]

log = logging.getLogger(__name__)

Runner = Callable[[TaskContext], Awaitable[Any]]
FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


class _Run:
    """One local run of a task: its shared state and when it ended."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.state = RunState()
        self.done = asyncio.Event()


class TaskEngine:
    """Durable task execution on one node of a shared store.

    ``lease_seconds`` is how long a task stays ours without a heartbeat;
    ``heartbeat_seconds`` how often we renew; ``claim_interval`` how often we
    look for expired leases (default ``lease_seconds / 3``; 0 turns the
    claimer off: then only ``recover()``/``claim_expired()`` claim).
    ``node`` (a runtime ``Node``) runs each task as a process ``task:<id>``;
    without it each run is an asyncio task owned by the engine.
    ``poll_interval`` bounds how stale ``wait`` and ``receive_signal`` get
    for changes made by other nodes. Create it inside a running event loop;
    ``close()`` it.
    """

    def __init__(
        self,
        store: Store,
        *,
        node_name: str,
        node: Any = None,
        lease_seconds: float = 15.0,
        heartbeat_seconds: float = 5.0,
        claim_interval: float | None = None,
        poll_interval: float = 0.25,
        shutdown_timeout: float = 5.0,
        store_retry: RetryPolicy = STORE_RETRY,
    ) -> None:
        if not 0 < heartbeat_seconds < lease_seconds:
            raise UsageError(
                f"heartbeat_seconds ({heartbeat_seconds}) must be > 0 and < lease_seconds ({lease_seconds})"
            )
        self.store = store
        self.node_name = node_name
        self.lease_seconds = lease_seconds
        self._poll = poll_interval
        self._shutdown_timeout = shutdown_timeout
        self._store_retry = store_retry
        self._kinds: dict[str, tuple[Runner, RetryPolicy]] = {}
        self._runs: dict[str, _Run] = {}
        self._host: RunHost = make_host(node, on_message=self.signal)
        self._changed = asyncio.Event()
        self._closed = False
        self.signals = SignalBox(store, poll_interval=poll_interval, policy=store_retry)
        self._leases = LeaseKeeper(
            store,
            node_name=node_name,
            lease_seconds=lease_seconds,
            heartbeat_seconds=heartbeat_seconds,
            claim_interval=claim_interval if claim_interval is not None else lease_seconds / 3,
            running_ids=lambda: list(self._runs),
            on_lost=self._lost,
            claim=self.claim_expired,
        )
        self._leases.start()

    # -- kinds -------------------------------------------------------------
    def register_kind(self, kind: str, runner: Runner, *, retry: RetryPolicy = NO_RETRY) -> None:
        """Run tasks of ``kind`` with ``runner(ctx)``; ``retry`` is its steps' default policy."""
        self._kinds[kind] = (runner, retry)

    @property
    def kinds(self) -> frozenset[str]:
        """The task kinds this engine can run."""
        return frozenset(self._kinds)

    # -- public API ----------------------------------------------------------
    async def start(
        self,
        kind: str,
        target: str,
        input: Any = None,
        *,
        task_id: str | None = None,
        parent_id: str | None = None,
        registry_version: int = 0,
    ) -> TaskRecord:
        """Create and run a task; with a used ``task_id`` return that task, never run it twice.

        Raises ``UsageError`` for an unknown kind or non-JSON input.
        """
        self._check_open()
        if kind not in self._kinds:
            raise UsageError(
                f"no runner for task kind {kind!r} on node {self.node_name!r}; known: {sorted(self._kinds)}"
            )
        now = time.time()
        record = TaskRecord(
            id=task_id or uuid.uuid4().hex,
            kind=kind,
            target=target,
            input=to_json_data(input, what=f"the input of task {task_id!r}"),
            status="running",
            owner=self.node_name,
            lease_expires_at=now + self.lease_seconds,
            registry_version=registry_version,
            parent_id=parent_id,
            created_at=now,
            updated_at=now,
        )
        stored, created = await self._retry(lambda: self.store.task_create(record), f"creating task {record.id!r}")
        # A retried create whose first attempt committed reports created=False for our own row.
        if created:
            self._launch(stored, fresh=True)  # a task that did not exist has no journal to load
        elif stored.owner == self.node_name and stored.created_at == now and stored.status == "running":
            self._launch(stored)
        return stored

    async def get(self, task_id: str) -> TaskRecord:
        """The stored task; raises ``TaskNotFound``."""
        task = await self._retry(lambda: self.store.task_get(task_id), f"reading task {task_id!r}")
        if task is None:
            raise TaskNotFound(f"no task with id {task_id!r}", task_id=task_id)
        return task

    async def wait(self, task_id: str, timeout: float | None = None) -> Any:
        """Block until the task ends; return its result or raise its error.

        Raises the stored error of a failed task, ``TaskCancelled``,
        ``TaskStranded`` (it needs ``resume``), ``TaskNotFound``, or
        ``TaskTimeout`` after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            changed = self._changed
            task = await self.get(task_id)
            if task.status == "succeeded":
                return task.result
            if task.status in ("failed", "cancelled", "stranded"):
                raise error_from_dict(task.error or {"type": "TaskError", "message": f"task {task_id!r} {task.status}"})
            left = self._poll if deadline is None else min(self._poll, deadline - time.monotonic())
            if left <= 0:
                raise TaskTimeout(f"task {task_id!r} still {task.status} after {timeout}s", task_id=task_id)
            try:
                await asyncio.wait_for(changed.wait(), left)
            except TimeoutError:
                pass

    async def cancel(self, task_id: str, *, reason: str = "cancelled") -> TaskRecord:
        """Mark the task cancelled; its runner sees ``TaskCancelled`` at its next step.

        A task running on another node loses its lease, so that node stops it
        at its next heartbeat. Raises ``TaskNotFound``; ``UsageError`` if it already ended.
        """
        task = await self.get(task_id)
        if task.status == "cancelled":
            return task
        if task.status in FINAL_STATUSES:
            raise UsageError(f"task {task_id!r} already {task.status}; there is nothing to cancel", task_id=task_id)
        error = TaskCancelled(f"task {task_id!r} was cancelled: {reason}", task_id=task_id).to_dict()
        run = self._runs.get(task_id)
        fields: dict[str, Any] = {"status": "cancelled", "error": error}
        if run is None:  # not here: free the lease so the owner's heartbeat notices
            fields.update(owner=None, lease_expires_at=None)
        task = await self._retry(lambda: self.store.task_update(task_id, **fields), f"cancelling {task_id!r}")
        if run is not None:
            run.state.cancel()
        self._notify()
        return task

    async def children(self, task_id: str, *, limit: int = 1000) -> list[TaskRecord]:
        """The tasks started with ``parent_id=task_id`` (delegates, child workflows, turns), newest first."""
        return await self.store.task_list(parent=task_id, limit=limit)

    async def journal(self, task_id: str) -> list[StepRecord]:
        """The task's journal as stored, in ``seq`` order (raises ``JournalCorrupt``, ``StoreError``)."""
        return await self.store.journal_load(task_id)

    def kill(self, task_id: str) -> bool:
        """Stop the task's run on this node now (its process is killed, not asked); False when it
        does not run here. The task's status is not changed: cancel it first to end it."""
        if task_id not in self._runs:
            return False
        self._host.kill(task_id)
        return True

    async def signal(self, task_id: str, topic: str, payload: Any = None) -> int:
        """Persist a signal for ``ctx.receive_signal(topic)``; returns its id. Raises ``TaskNotFound``."""
        await self.get(task_id)
        sid = await self.signals.send(task_id, topic, to_json_data(payload, what=f"signal {topic!r}"))
        run = self._runs.get(task_id)
        if run is not None:
            run.state.signal_event.set()
        return sid

    async def resume(self, task_id: str, *, retry: bool = False, skip: bool = False) -> TaskRecord:
        """Run a stranded (or failed, or orphaned) task again here.

        For a stranded task ``retry=True`` runs its unfinished step again and
        ``skip=True`` records it as skipped (null result). Raises
        ``TaskNotFound``, ``UsageError`` (finished, held by another live
        node, or stranded without retry/skip).
        """
        self._check_open()
        if task_id in self._runs:
            return await self.get(task_id)
        task, retry_seqs = await prepare_resume(self, task_id, retry=retry, skip=skip)
        self._launch(task, retry_seqs=retry_seqs)
        return task

    async def recover(self) -> list[TaskRecord]:
        """Claim our own tasks (after a restart) and expired ones, and resume them here."""
        return await self.claim_expired(include_own=True)

    async def claim_expired(self, *, include_own: bool = False, limit: int = 100) -> list[TaskRecord]:
        """Claim up to ``limit`` tasks whose lease expired (atomic: one claimant each) and run them."""
        if self._closed:
            return []
        claimed = await self.store.task_claim_expired(
            self.node_name, self.lease_seconds, limit=limit, include_own=include_own
        )
        started = []
        for task in claimed:
            if task.id in self._runs:
                continue
            if task.kind not in self._kinds:
                log.warning("node %r cannot run task %r of kind %r; leaving it", self.node_name, task.id, task.kind)
                await self.store.task_update(task.id, node=self.node_name, owner=None, lease_expires_at=None)
                continue
            self._launch(task)
            started.append(task)
        return started

    def running(self) -> list[str]:
        """Ids of the tasks running on this engine now."""
        return list(self._runs)

    async def close(self, *, release: bool = True) -> None:
        """Stop the loops and every run, waiting up to ``shutdown_timeout`` for them.

        With ``release`` the leases of the stopped tasks are freed so another
        node resumes them at once; without, they wait for lease expiry (a
        restarted node with the same name recovers them with ``recover()``).
        """
        if self._closed:
            return
        self._closed = True
        await self._leases.stop()
        runs = list(self._runs.values())
        for run in runs:
            run.state.interrupt()
        await self._host.stop_all(timeout=self._shutdown_timeout)
        if release:
            for run in runs:
                try:
                    await self.store.task_update(run.task_id, node=self.node_name, owner=None, lease_expires_at=None)
                except (StoreError, TaskError, TaskNotFound) as exc:
                    log.info("could not release task %r: %s", run.task_id, exc)

    # -- running ---------------------------------------------------------------
    def _launch(self, task: TaskRecord, *, retry_seqs: frozenset[int] = frozenset(), fresh: bool = False) -> None:
        run = _Run(task.id)
        self._runs[task.id] = run
        self._host.spawn(task.id, lambda: self._drive(run, task, retry_seqs, fresh), on_done=lambda: self._ended(run))

    def _ended(self, run: _Run) -> None:
        if self._runs.get(run.task_id) is run:
            del self._runs[run.task_id]
        run.done.set()
        self._notify()

    async def _drive(self, run: _Run, task: TaskRecord, retry_seqs: frozenset[int], fresh: bool) -> None:
        """Run one task and record how it ended (while the lease is still ours)."""
        runner, default_retry = self._kinds[task.kind]
        outcome = await execute(
            task, runner, store=self.store, node_name=self.node_name, state=run.state, signals=self.signals,
            policy=self._store_retry, default_retry=default_retry, retry_seqs=retry_seqs, children=self, fresh=fresh,
        )
        if outcome.status == "abandoned":
            if not run.state.cancelled:
                log.warning("node %r leaves task %r to be resumed later: %s", self.node_name, task.id, outcome.why)
        elif outcome.status == "cancelled":  # the status is 'cancelled' already; free the lease
            await self._finish(task.id, guarded=False, owner=None, lease_expires_at=None)
        elif outcome.status == "stranded":
            await self._finish(task.id, status="stranded", error=outcome.error, owner=None, lease_expires_at=None)
        else:
            await self._finish(
                task.id, status=outcome.status, result=outcome.result, error=outcome.error, lease_expires_at=None
            )

    async def _finish(self, task_id: str, *, guarded: bool = True, **fields: Any) -> None:
        """Record a run's end, only while we still own the task (``guarded``)."""
        node = self.node_name if guarded else None
        try:
            await self._retry(lambda: self.store.task_update(task_id, node=node, **fields), f"ending task {task_id!r}")
        except LeaseLost as exc:
            log.warning("task %r ended here but another node owns it now: %s", task_id, exc)
        except StoreError as exc:
            log.error("could not record the end of task %r (it will be resumed): %s", task_id, exc)

    async def _lost(self, task_ids: list[str]) -> None:
        """The heartbeat found these leases gone: cancelled elsewhere, or taken over."""
        for task_id in task_ids:
            run = self._runs.get(task_id)
            if run is None:
                continue
            task = await self.store.task_get(task_id)
            if task is not None and task.status == "cancelled":
                run.state.cancel()
            else:
                log.warning("node %r lost the lease of task %r; stopping it here", self.node_name, task_id)
                self._host.kill(task_id)

    # -- helpers -----------------------------------------------------------------
    async def _retry(self, call: Callable[[], Awaitable[Any]], what: str) -> Any:
        return await retry_store(call, self._store_retry, what=what)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError(f"the task engine of node {self.node_name!r} is closed")
