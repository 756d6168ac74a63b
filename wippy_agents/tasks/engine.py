"""TaskEngine: start, run, wait for, cancel, resume and recover durable tasks.

Example::

    engine = TaskEngine(store, node_name="local", lease_seconds=15, heartbeat_seconds=5)
    engine.register_kind("greet", greet)          # async def greet(ctx) -> JSON data
    task = await engine.start("greet", "app:greet", {"name": "Ada"}, task_id="greet-ada")
    print(await engine.wait(task.id, timeout=10))
    await engine.close()

A task runs on the node that holds its lease: the heartbeat keeps it, the
claimer takes queued tasks (``enqueue``) and tasks whose lease expired (a dead
node's) and resumes them from their journal. A node never takes a task whose
owner is alive: an owner on this host whose process is gone is known dead at
once (``nodes.is_alive``), any other only when its lease expired. Every write
of a run is fenced on the epoch of its claim. Runs are owned by the engine (an
asyncio task each, or a process on the runtime ``Node`` when one is given):
``close()`` ends them all and leaves them ``pending`` for the next node.
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
from ..runtime import SYSTEM_CLOCK, Clock
from ..store.base import NodeRecord, StepRecord, Store, TaskRecord
from .context import RunState, TaskContext
from .runs import execute
from .hosting import RunHost, make_host
from .journal import to_json_data
from .leases import Lease, LeaseKeeper
from .nodes import NodeIdentity, is_alive
from .resume import prepare_resume
from .retry import NO_RETRY, STORE_RETRY, RetryPolicy, retry_store
from .signals import SignalBox

__all__ = ["TaskEngine", "Runner", "FINAL_STATUSES"]

log = logging.getLogger(__name__)

Runner = Callable[[TaskContext], Awaitable[Any]]
FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


class _Run:
    """One local run of a task: its lease, shared state, and when it ended."""

    def __init__(self, task_id: str, lease: Lease) -> None:
        self.task_id = task_id
        self.lease = lease
        self.state = RunState()
        self.done = asyncio.Event()
        self.settled = False  # its end (or its release) is recorded


class TaskEngine:
    """Durable task execution on one node of a shared store.

    ``lease_seconds`` is how long a task stays ours without a heartbeat;
    ``heartbeat_seconds`` how often we renew; ``claim_interval`` how often we
    look for expired leases (default ``lease_seconds / 3``; 0 turns the
    claimer off: then only ``recover()``/``claim_expired()`` claim).
    ``node`` (a runtime ``Node``) runs each task as a process ``task:<id>``;
    without it each run is an asyncio task owned by the engine.
    ``poll_interval`` bounds how stale ``wait`` and ``receive_signal`` get
    for changes made by other nodes. ``identity`` (``nodes.this_process``)
    makes this engine a node on the store: ``await register()`` holds its
    name (``NameTaken`` while another live process has it) and lets other
    processes on this host know at once when it is gone. ``max_tasks`` bounds
    how many tasks the claimer runs here at once. Create it inside a running
    event loop; ``close()`` it.
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
        identity: NodeIdentity | None = None,
        max_tasks: int = 50,
    ) -> None:
        if not 0 < heartbeat_seconds < lease_seconds:
            raise UsageError(
                f"heartbeat_seconds ({heartbeat_seconds}) must be > 0 and < lease_seconds ({lease_seconds})"
            )
        if max_tasks < 1:
            raise UsageError(f"max_tasks must be at least 1, got {max_tasks!r}")
        self.store = store
        self.node_name = node_name
        self.clock: Clock = getattr(node, "clock", None) or SYSTEM_CLOCK  # durable time comes from the node
        self.identity = identity
        self.max_tasks = max_tasks
        self._registered = False
        self._reaped_at = -1e9  # monotonic time of the last look for dead owners on this host
        self.lease_seconds = lease_seconds
        self._poll = poll_interval
        self._shutdown_timeout = shutdown_timeout
        self._store_retry = store_retry
        self._kinds: dict[str, tuple[Runner, RetryPolicy]] = {}
        self._runs: dict[str, _Run] = {}
        self._host: RunHost = make_host(node, on_message=self.signal)
        self._changed = asyncio.Event()
        self._closed = False
        self._interrupted: dict[str, _Run] = {}  # runs stopped by ``interrupt``: released at ``close``
        self.signals = SignalBox(store, poll_interval=poll_interval, policy=store_retry)
        self._leases = LeaseKeeper(
            store,
            node_name=node_name,
            lease_seconds=lease_seconds,
            heartbeat_seconds=heartbeat_seconds,
            claim_interval=claim_interval if claim_interval is not None else lease_seconds / 3,
            leases=lambda: {task_id: run.lease for task_id, run in self._runs.items()},
            on_lost=self._lost,
            claim=self.claim_expired,
            beat_node=self._beat_node,
        )
        self._leases.start()

    # -- this node on the store ------------------------------------------------
    async def register(self) -> None:
        """Hold this node's name on the store (see the class doc); a no-op without ``identity``.

        Raises ``NameTaken`` while another live process holds the name.
        """
        me = self.identity
        if me is None or self._registered:
            return
        held = await self.store.node_get(me.name)
        if held is not None and held.started != me.started and self._dead_here(held):
            await self._forget(held)
        await self.store.node_register(NodeRecord(name=me.name, host=me.host, pid=me.pid, started=me.started,
                                                  stable=me.stable), ttl=self.lease_seconds)
        self._registered = True
        log.debug("node %s: registered (host %s, pid %d)", me.name, me.host, me.pid)

    def _dead_here(self, node: NodeRecord) -> bool:
        me = self.identity
        return me is not None and node.host == me.host and not is_alive(node.pid, node.started)

    async def _forget(self, node: NodeRecord) -> None:
        freed = await self.store.node_forget(node.name, started=node.started)
        log.warning("node %s: node %s (pid %d on this host) is gone; %d of its task(s) are free to take",
                    self.node_name, node.name, node.pid, freed)

    async def reap(self, *, force: bool = False) -> None:
        """Free the leases of nodes on this host whose process is gone (at most every
        ``lease_seconds / 3`` unless ``force``)."""
        me = self.identity
        now = time.monotonic()
        if me is None or (not force and now - self._reaped_at < self.lease_seconds / 3):
            return
        self._reaped_at = now
        for node in await self.store.node_list(host=me.host):
            if node.started != me.started and self._dead_here(node):
                await self._forget(node)

    async def _beat_node(self) -> None:
        me = self.identity
        if me is not None and self._registered and not await self.store.node_heartbeat(me.name, started=me.started):
            log.error("node %s: another process holds this node name now (this one was paused or cut off); "
                      "its tasks are fenced by their epochs", me.name)

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
        now, sent = time.time(), time.monotonic()
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
            epoch=1,
        )
        stored, created = await self._retry(lambda: self.store.task_create(record), f"creating task {record.id!r}")
        # A retried create whose first attempt committed reports created=False for our own row.
        if created:
            self._launch(stored, fresh=True, since=sent)  # a task that did not exist has no journal to load
        elif stored.owner == self.node_name and stored.created_at == now and stored.status == "running":
            self._launch(stored, since=sent)
        elif stored.id not in self._runs and stored.status in ("pending", "running"):
            return await self.adopt(stored.id) or stored
        return stored

    async def adopt(self, task_id: str) -> TaskRecord | None:
        """Run an existing unfinished task here if nobody alive holds it (queued, its lease
        expired, or its owner's process on this host is gone); None when a live node
        holds it (it finishes it) or it ended. Raises ``TaskNotFound``."""
        self._check_open()
        if task_id in self._runs:
            return await self.get(task_id)
        task = await self.get(task_id)
        if task.owner and task.owner != self.node_name and self.identity is not None:
            owner = await self.store.node_get(task.owner)
            if owner is not None and self._dead_here(owner):
                await self._forget(owner)
        sent = time.monotonic()
        claimed = await self.store.task_claim(task_id, self.node_name, self.lease_seconds)
        if claimed is None or task_id in self._runs:
            return None
        if claimed.kind not in self._kinds:
            await self._release(claimed.id, claimed.epoch)
            raise UsageError(f"task {task_id!r} is of kind {claimed.kind!r}, which node {self.node_name!r} cannot run",
                             task_id=task_id)
        self._log_claim(claimed, previous=task.owner)
        self._launch(claimed, since=sent)
        return claimed

    async def enqueue(
        self,
        kind: str,
        target: str,
        input: Any = None,
        *,
        task_id: str | None = None,
        parent_id: str | None = None,
        registry_version: int = 0,
    ) -> tuple[TaskRecord, bool]:
        """Queue a task for any node of the store to claim (``pending``, no owner); it does
        not run here unless this engine claims it. Returns ``(task, created)``: with a
        used ``task_id`` the task already holding it, never a second one.

        Raises ``UsageError`` for an unknown kind or non-JSON input.
        """
        self._check_open()
        if kind not in self._kinds:
            raise UsageError(f"no runner for task kind {kind!r}; known: {sorted(self._kinds)}")
        record = TaskRecord(
            id=task_id or uuid.uuid4().hex, kind=kind, target=target,
            input=to_json_data(input, what=f"the input of task {task_id!r}"), status="pending",
            registry_version=registry_version, parent_id=parent_id,
        )
        stored, created = await self._retry(lambda: self.store.task_create(record), f"queueing task {record.id!r}")
        if created:
            log.info("node %s: queued task %s (%s %s)", self.node_name, stored.id, kind, target)
            self._leases.wake()
        return stored, created

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
        if self.identity is not None:
            await self.reap(force=True)
        sent = time.monotonic()
        task, retry_seqs = await prepare_resume(self, task_id, retry=retry, skip=skip)
        self._log_claim(task, previous=None, why="resumed by hand")
        self._launch(task, retry_seqs=retry_seqs, since=sent)
        return task

    async def recover(self) -> list[TaskRecord]:
        """Claim our own tasks (after a restart under a stable name), free and expired ones, and
        resume them here. Tasks of a live owner are never taken."""
        return await self.claim_expired(include_own=self.identity is None or self.identity.stable, force_reap=True)

    async def claim_expired(
        self, *, include_own: bool = False, limit: int | None = None, force_reap: bool = False
    ) -> list[TaskRecord]:
        """Claim queued tasks and tasks whose lease expired or whose owner is gone (atomic:
        one claimant each), up to ``limit`` and to ``max_tasks`` running here, and run them."""
        if self._closed:
            return []
        room = self.max_tasks - len(self._runs)
        limit = room if limit is None else min(limit, room)
        if limit <= 0:
            return []
        await self.reap(force=force_reap)
        sent = time.monotonic()
        claimed = await self.store.task_claim_expired(
            self.node_name, self.lease_seconds, limit=limit, include_own=include_own, exclude=list(self._runs)
        )
        started = []
        for task in claimed:
            run = self._runs.get(task.id)
            if run is not None:  # our own live run (include_own, or its lease ran out here): keep it going
                run.lease.epoch = task.epoch
                run.lease.renewed(sent)  # counted from the request, like a heartbeat
                continue
            if task.kind not in self._kinds or self._closed:
                if not self._closed:
                    log.warning("node %r cannot run task %r of kind %r; leaving it", self.node_name, task.id, task.kind)
                await self._release(task.id, task.epoch)
                continue
            self._log_claim(task, previous=None)
            self._launch(task, since=sent)
            started.append(task)
        return started

    def _log_claim(self, task: TaskRecord, *, previous: str | None, why: str = "") -> None:
        if previous and previous != self.node_name:
            what = f"took over task {task.id} from node {previous}"
        elif task.epoch > 1:
            what = f"took over task {task.id}"
        else:
            what = f"claimed queued task {task.id}"
        log.info("node %s: %s (%s %s, epoch %d%s)", self.node_name, what, task.kind, task.target, task.epoch,
                 f", {why}" if why else "")

    def running(self) -> list[str]:
        """Ids of the tasks running on this engine now."""
        return list(self._runs)

    def interrupt(self) -> None:
        """Begin stopping (SIGINT/SIGTERM, or ``close``): claim nothing more, stop every run at
        its next step boundary or wait, and cut short the idempotent steps in flight (they
        run again on resume; a non-idempotent one is given ``shutdown_timeout`` to finish).
        Nothing cut short is journaled as an error. Safe to call more than once."""
        self._closed = True
        for run in list(self._runs.values()):
            self._interrupted.setdefault(run.task_id, run)
            run.state.interrupt()
            if run.state.in_flight == "redoable":
                self._host.kill(run.task_id)

    async def close(self, *, release: bool = True) -> None:
        """Stop the loops and every run (``interrupt``), waiting up to ``shutdown_timeout`` for them.

        With ``release`` the stopped tasks go back to ``pending`` with no owner, so any
        node resumes them at once; without, they wait for lease expiry (a restarted node
        with the same name recovers them with ``recover()``).
        """
        if self._leases is None:
            return
        keeper, self._leases = self._leases, None
        self.interrupt()
        runs = list(self._interrupted.values())
        await keeper.stop()
        await self._host.stop_all(timeout=self._shutdown_timeout)
        if release:
            for run in runs:
                if not run.settled and not run.lease.lost:
                    await self._release(run.task_id, run.lease.epoch)
            me = self.identity
            if me is not None and self._registered:
                try:
                    await self.store.node_forget(me.name, started=me.started)
                except StoreError as exc:
                    log.info("node %s: could not drop its node row: %s", me.name, exc)

    async def _release(self, task_id: str, epoch: int) -> None:
        """Give a task back: ``pending``, no owner (only while our claim holds)."""
        try:
            await self.store.task_update(task_id, node=self.node_name, epoch=epoch, owner=None,
                                         lease_expires_at=None, status="pending")
            log.debug("node %s: released task %s (pending; any node resumes it)", self.node_name, task_id)
        except (StoreError, TaskError, TaskNotFound) as exc:
            log.info("could not release task %r: %s", task_id, exc)

    # -- running ---------------------------------------------------------------
    def _launch(self, task: TaskRecord, *, retry_seqs: frozenset[int] = frozenset(), fresh: bool = False,
                since: float | None = None) -> None:
        """``since``: when the claim was sent (the lease is counted from then, see ``Lease``)."""
        run = _Run(task.id, Lease(self.store, task.id, self.node_name, task.epoch, self.lease_seconds, since))
        self._runs[task.id] = run
        self._host.spawn(task.id, lambda: self._drive(run, task, retry_seqs, fresh), on_done=lambda: self._ended(run))

    def _ended(self, run: _Run) -> None:
        if self._runs.get(run.task_id) is run:
            del self._runs[run.task_id]
        run.done.set()
        self._notify()
        if self._leases is not None:
            self._leases.wake()  # room for one more

    async def _drive(self, run: _Run, task: TaskRecord, retry_seqs: frozenset[int], fresh: bool) -> None:
        """Run one task and record how it ended (while the lease is still ours)."""
        runner, default_retry = self._kinds[task.kind]
        outcome = await execute(
            task, runner, store=self.store, node_name=self.node_name, state=run.state, signals=self.signals,
            policy=self._store_retry, default_retry=default_retry, retry_seqs=retry_seqs, children=self, fresh=fresh,
            lease=run.lease, clock=self.clock,
        )
        if outcome.status == "abandoned":
            if run.lease.lost:
                log.warning("node %s: lost the lease of task %s; stopped it here: %s", self.node_name, task.id,
                            outcome.why)
                run.settled = True
            elif run.state.stopping and not run.state.cancelled:
                await self._release(task.id, run.lease.epoch)
                run.settled = True
            elif not run.state.cancelled:
                log.warning("node %r leaves task %r to be resumed later: %s", self.node_name, task.id, outcome.why)
        elif outcome.status == "cancelled":  # the status is 'cancelled' already; free the lease
            await self._finish(run, guarded=False, owner=None, lease_expires_at=None)
        elif outcome.status == "stranded":
            await self._finish(run, status="stranded", error=outcome.error, owner=None, lease_expires_at=None)
        else:
            await self._finish(
                run, status=outcome.status, result=outcome.result, error=outcome.error, lease_expires_at=None
            )

    async def _finish(self, run: _Run, *, guarded: bool = True, **fields: Any) -> None:
        """Record a run's end, only while our claim still holds the task (``guarded``)."""
        task_id = run.task_id
        node, epoch = (self.node_name, run.lease.epoch) if guarded else (None, None)
        try:
            await self._retry(lambda: self.store.task_update(task_id, node=node, epoch=epoch, **fields),
                              f"ending task {task_id!r}")
            run.settled = True
        except LeaseLost as exc:
            run.lease.lose()
            run.settled = True
            log.warning("node %s: task %s ended here but another node holds it now: %s", self.node_name, task_id, exc)
        except StoreError as exc:
            log.error("could not record the end of task %r (it will be resumed): %s", task_id, exc)

    async def _lost(self, task_ids: list[str]) -> None:
        """The heartbeat found these leases gone: cancelled elsewhere, or taken over."""
        for task_id in task_ids:
            run = self._runs.get(task_id)
            if run is None:
                continue
            run.lease.lose()  # no write of this run is sent again (the store would refuse it anyway)
            task = await self.store.task_get(task_id)
            if task is not None and task.status == "cancelled":
                run.state.cancel()
            else:
                log.warning("node %s: lost the lease of task %s (now %s at epoch %s); stopping it here",
                            self.node_name, task_id, task.owner if task else None, task.epoch if task else None)
                self._host.kill(task_id)

    # -- helpers -----------------------------------------------------------------
    async def _retry(self, call: Callable[[], Awaitable[Any]], what: str) -> Any:
        return await retry_store(call, self._store_retry, what=what)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _check_open(self) -> None:
        if self._closed or self._leases is None:
            raise UsageError(f"the task engine of node {self.node_name!r} is closed")
