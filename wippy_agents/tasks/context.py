"""TaskContext: what a runner uses to make its outside effects durable.

Every call that touches the outside world — a step's function, the clock, a
random value, a timer, a signal — takes the next sequence number. The first
run records its outcome in the journal before any later step's function runs
(in the same round trip as that step's own write); a resumed run gets the
recorded outcomes back without running anything again.

Example::

    async def order(ctx: TaskContext):
        charge = await ctx.step("charge", lambda: payments.charge(ctx.task.input["amount"]))
        await ctx.sleep(3600)                        # durable: survives a restart
        ok = await ctx.receive_signal("approved", timeout=86400)
        return {"charge": charge, "approved": ok}
"""

from __future__ import annotations

import asyncio
import inspect
import random as _random
import uuid as _uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol

from ..errors import (
    JournalCorrupt,
    NondeterminismError,
    RunInterrupted,
    StepFailed,
    StoreError,
    TaskCancelled,
    TaskError,
    TaskStranded,
    UsageError,
    WippyError,
    error_from_dict,
)
from ..runtime import SYSTEM_CLOCK, Clock
from ..store.base import StepRecord, TaskRecord
from .journal import Journal, encode_json
from .retry import NO_RETRY, RetryPolicy
from .signals import SignalBox

__all__ = ["TaskContext", "RunState", "RunInterrupted", "Metered", "StepScope", "current_step"]


class Children(Protocol):
    """What ``run_child`` needs of the engine."""

    async def start(self, kind: str, target: str, input: Any = None, *, task_id: str | None = None,
                    parent_id: str | None = None) -> TaskRecord: ...

    async def wait(self, task_id: str, timeout: float | None = None) -> Any: ...



@dataclass(frozen=True, kw_only=True)
class Metered:
    """What a step function returns to journal its usage with its value.

    ``ctx.step("model", call)`` where ``call`` returns
    ``Metered(value=reply, tokens=812, cost_usd=0.0021)`` records the tokens
    and cost on the journal row; the step itself returns ``reply``.
    """

    value: Any
    tokens: int = 0
    cost_usd: float = 0.0


_UNMETERED = Metered(value=None)


@dataclass(frozen=True, kw_only=True)
class StepScope:
    """The step whose function is running now: its task's context, its seq and its name."""

    context: "TaskContext"
    seq: int
    name: str

    def earlier(self) -> int:
        """How many steps of the same name the task's journal holds before this one."""
        return self.context.count_steps(self.name, before=self.seq)


_CURRENT: ContextVar[StepScope | None] = ContextVar("wippy_current_step", default=None)


def current_step() -> StepScope | None:
    """The step whose function is running in this asyncio task, else None (outside any step)."""
    return _CURRENT.get()


class RunState:
    """Live state of one run shared by the engine and the context.

    ``cancelled_event`` ends any wait; ``signal_event`` is set when a signal
    for the task arrives (and on cancel) so a waiting receive looks again.
    """

    def __init__(self) -> None:
        self.cancelled = False
        self.stopping = False
        # What the run does now: "effect" while a non-idempotent step's function runs
        # (an interrupt lets it finish), "redoable" while an idempotent one runs (an
        # interrupt cuts it short: it runs again on resume), else None.
        self.in_flight: str | None = None
        self.cancelled_event = asyncio.Event()
        self.signal_event = asyncio.Event()

    def cancel(self) -> None:
        self.cancelled = True
        self.cancelled_event.set()
        self.signal_event.set()

    def interrupt(self) -> None:
        """Ask the run to stop at its next step boundary or wait (engine closing)."""
        self.stopping = True
        self.cancelled_event.set()
        self.signal_event.set()


class TaskContext:
    """The journal-backed API handed to a task's runner.

    Replaying a task whose code changed raises ``NondeterminismError``; a
    non-idempotent step that started but never finished raises
    ``TaskStranded``; a cancelled task raises ``TaskCancelled`` at its next
    step or while it waits. The engine turns those into the task's status.
    """

    def __init__(
        self,
        *,
        task: TaskRecord,
        journal: Journal,
        state: RunState,
        signals: SignalBox,
        retry_seqs: frozenset[int] = frozenset(),
        default_retry: RetryPolicy = NO_RETRY,
        children: Children | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.task = task
        self.clock: Clock = clock or SYSTEM_CLOCK  # the node's: durable time and waits (FakeClock in tests)
        self._children = children
        self._journal = journal
        self._state = state
        self._signals = signals
        self._retry_seqs = retry_seqs
        self._default_retry = default_retry
        self._seq = 0
        self._consumed: dict[str, int] = {}  # topic -> last signal id taken
        # Whether the last receive_signal ended by its timeout (its None is then no payload).
        self.last_signal_timed_out = False
        # The first replay failure (divergence, stranding, corrupt row) ends the
        # run even if the runner catches it: later seqs would no longer line up.
        self.fatal: TaskError | StoreError | None = None

    @property
    def seq(self) -> int:
        """The number of journaled calls made so far in this run."""
        return self._seq

    def count_steps(self, name: str, *, before: int) -> int:
        """How many steps named ``name`` this task's journal holds before seq ``before``."""
        return self._journal.count(name, before=before)

    @property
    def replaying(self) -> bool:
        """True while the code is still answered from the recorded journal."""
        return self._seq < self._journal.last_recorded_seq

    # -- steps ------------------------------------------------------------
    async def step(
        self,
        name: str,
        fn: Callable[[], Awaitable[Any] | Any],
        *,
        idempotent: bool = False,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Run ``fn()`` once durably and return its (JSON) result.

        A non-idempotent step writes a ``started`` row before ``fn`` runs and
        its outcome after (two round trips), so a crash in between strands
        the task instead of repeating the side effect; an ``idempotent`` step
        writes only its outcome (one round trip) and simply runs again.
        On replay returns the recorded result (or raises the recorded error)
        without calling ``fn``. Blocks while ``fn`` runs, between retries and
        while the store is unreachable. Raises ``NondeterminismError``,
        ``TaskStranded``, ``TaskCancelled``, ``LeaseLost`` or the step's own
        error (a ``WippyError``; other exceptions arrive as ``StepFailed``).
        """
        if not name or not isinstance(name, str):
            raise UsageError(f"a step needs a non-empty name, got {name!r}")
        seq = self._next(name)
        recorded = self._lookup(seq, name)
        if recorded is not None:
            if recorded.status != "started":
                return _answer(recorded)
            if not (idempotent or seq in self._retry_seqs):
                raise self._fail(TaskStranded(
                    f"task {self.task.id!r} stopped at step {seq} {name!r}: it started but never finished and "
                    f"is not idempotent; run `wippy tasks resume {self.task.id} --retry` to run it again "
                    "or `--skip` to record it as skipped",
                    task_id=self.task.id,
                    seq=seq,
                    step=name,
                ))
            # its next attempt: a new start time, the attempt counted (earlier steps go along)
            started_at = await self._journal.start(seq, name)
        elif idempotent:
            # Running it again after a crash is allowed, so no 'started' marker is
            # needed; only earlier steps must be durable before this effect runs.
            await self._journal.flush()
            started_at = self.clock.time()
        else:
            started_at = await self._journal.start(seq, name)
        return await self._execute(seq, name, fn, retry or self._default_retry, started_at,
                                   idempotent=idempotent)

    async def _execute(self, seq: int, name: str, fn: Callable, policy: RetryPolicy, started_at: float, *,
                       idempotent: bool = False) -> Any:
        delays = None  # made on the first failure: most steps never need one
        state = self._state
        tries = 0
        while True:
            tries += 1
            await self._journal.ensure_lease()  # a node that lost the task causes no effect
            scope = _CURRENT.set(StepScope(context=self, seq=seq, name=name))
            try:
                state.in_flight = "redoable" if idempotent else "effect"
                try:
                    value = fn()
                    if inspect.isawaitable(value):
                        value = await value
                finally:
                    state.in_flight = None
                    _CURRENT.reset(scope)
                usage = value if isinstance(value, Metered) else _UNMETERED
                value, text = encode_json(usage.value if usage is not _UNMETERED else value, what=f"step {name!r}")
            except (asyncio.CancelledError, TaskCancelled):
                raise
            except Exception as exc:
                if state.stopping:
                    # Cut short by the interrupt (its client closed under it): not the step's
                    # error; the step runs again when the task resumes.
                    raise RunInterrupted(f"task {self.task.id!r}: step {seq} {name!r} cut short by an "
                                         "interrupt") from exc
                if delays is None:
                    delays = policy.delays()
                delay = next(delays, None) if policy.retryable(exc) else None
                if delay is None:
                    error = self._error_record(exc, seq, name)
                    await self._journal.finish(seq, name, started_at=started_at, error=error, tries=tries)
                    raise error_from_dict(error) from exc
                await self._wait_until(self.clock.monotonic() + delay, clock=self.clock.monotonic)
                continue
            recorded = await self._journal.finish(  # a non-idempotent result is durable before it is returned
                seq, name, started_at=started_at, result=value, tokens=usage.tokens, cost_usd=usage.cost_usd,
                result_json=text, tries=tries, durable=not idempotent,
            )
            return _answer(recorded)

    def _error_record(self, exc: Exception, seq: int, name: str) -> dict[str, Any]:
        if isinstance(exc, WippyError):
            return exc.to_dict()
        return StepFailed(
            f"step {name!r} (task {self.task.id!r}, seq {seq}) raised {type(exc).__name__}: {exc}",
            task_id=self.task.id,
            seq=seq,
            step=name,
            exc_type=type(exc).__name__,
        ).to_dict()

    # -- durable values -----------------------------------------------------
    async def now(self) -> float:
        """Wall-clock time (epoch seconds), recorded once and replayed."""
        return await self._value("time.now", self.clock.time)

    async def uuid4(self) -> str:
        """A random UUID string, recorded once and replayed."""
        return await self._value("uuid.v4", lambda: str(_uuid.uuid4()))

    async def random(self) -> float:
        """A float in [0, 1), recorded once and replayed."""
        return await self._value("random", _random.random)

    async def sleep(self, seconds: float) -> None:
        """A durable timer: fires once, at the wake-up time recorded on first run.

        After a restart only the remainder is slept (nothing if it passed).
        Raises ``TaskCancelled`` at once if the task is cancelled meanwhile.
        """
        if seconds < 0:
            raise UsageError(f"ctx.sleep needs seconds >= 0, got {seconds!r}")
        # Durable at once: the wake-up time must survive a crash during the sleep.
        wake_at = await self._value("time.sleep", lambda: self.clock.time() + seconds, durable=True)
        await self._wait_until(wake_at, clock=self.clock.time)

    async def _value(self, name: str, make: Callable[[], Any], *, durable: bool = False) -> Any:
        seq = self._next(name)
        recorded = self._lookup(seq, name)
        if recorded is not None:
            if recorded.status != "ok":
                raise self._fail(JournalCorrupt(
                    f"journal row (task {self.task.id!r}, seq {seq}) for {name!r} has status "
                    f"{recorded.status!r}; a recorded value is always 'ok'",
                    task_id=self.task.id,
                    seq=seq,
                ))
            return recorded.result
        at = self.clock.time()
        recorded = await self._journal.finish(seq, name, started_at=at, result=make(), durable=durable)
        return recorded.result

    # -- child tasks --------------------------------------------------------
    async def run_child(self, kind: str, target: str, input: Any = None, *, timeout: float | None = None) -> Any:
        """Start a child task and return its result, durably (one step).

        The child's id is ``<parent id>/<seq>``, so after a crash the step
        finds the same child (start is idempotent by id) instead of starting
        a second one. The child's error becomes this step's error.
        """
        if self._children is None:
            raise UsageError(f"task {self.task.id!r} cannot start child tasks: no engine was given")
        child_id = f"{self.task.id}/{self._seq + 1}"  # the seq the step below takes
        children = self._children

        async def start_and_wait() -> Any:
            await children.start(kind, target, input, task_id=child_id, parent_id=self.task.id)
            return await children.wait(child_id, timeout=timeout)

        return await self.step(f"child:{kind}:{target}", start_and_wait, idempotent=True)

    # -- signals ----------------------------------------------------------
    async def receive_signal(self, topic: str, timeout: float | None = None) -> Any:
        """The next signal sent to this task on ``topic`` (its payload), durably.

        Signals are persisted when sent, so none is lost while the task is
        down; each is received once. With ``timeout`` the deadline is recorded
        on first run (durable like ``sleep``) and None is returned when it
        passes. Raises ``TaskCancelled`` if the task is cancelled meanwhile.
        """
        deadline = None
        if timeout is not None:
            deadline = await self._value(f"signal.deadline:{topic}", lambda: self.clock.time() + timeout, durable=True)
        name = f"signal:{topic}"
        seq = self._next(name)
        recorded = self._lookup(seq, name)
        if recorded is None:
            recorded = await self._await_signal(seq, name, topic, deadline)
        value = _answer(recorded)
        if not isinstance(value, dict) or not ("id" in value or value.get("timeout")):
            raise self._fail(
                JournalCorrupt(f"journal row (task {self.task.id!r}, seq {seq}) is not a signal record: {value!r}")
            )
        self.last_signal_timed_out = bool(value.get("timeout"))
        if value.get("timeout"):
            return None
        self._consumed[topic] = value["id"]
        return value.get("payload")

    async def _await_signal(self, seq: int, name: str, topic: str, deadline: float | None) -> StepRecord:
        at = self.clock.time()
        while True:
            self._state.signal_event.clear()
            found = await self._signals.next(self.task.id, topic, after=self._consumed.get(topic, 0))
            if found is not None:
                sid, payload = found
                result = {"id": sid, "payload": payload}
                return await self._journal.finish(seq, name, started_at=at, result=result)
            if deadline is not None and self.clock.time() >= deadline:
                return await self._journal.finish(seq, name, started_at=at, result={"timeout": True})
            limit = self.clock.time() + self._signals.poll_interval
            until = limit if deadline is None else min(limit, deadline)
            await self._wait_until(until, clock=self.clock.time, event=self._state.signal_event)

    # -- internals ----------------------------------------------------------
    def _lookup(self, seq: int, name: str) -> StepRecord | None:
        try:
            return self._journal.recorded(seq, name)
        except NondeterminismError as exc:
            raise self._fail(exc) from None

    def _fail(self, exc: TaskError | StoreError) -> TaskError | StoreError:
        if self.fatal is None:
            self.fatal = exc
        return exc

    def _next(self, name: str) -> int:
        if self.fatal is not None:
            raise self.fatal
        if self._state.stopping:
            raise RunInterrupted(f"task {self.task.id!r}: the engine is closing")
        if self._state.cancelled:
            raise TaskCancelled(
                f"task {self.task.id!r} was cancelled (before step {self._seq + 1} {name!r})", task_id=self.task.id
            )
        self._seq += 1
        return self._seq

    async def _wait_until(
        self, until: float, *, clock: Callable[[], float], event: asyncio.Event | None = None
    ) -> None:
        """Wait until ``clock() >= until`` or ``event`` is set; raises
        ``TaskCancelled`` as soon as the task is cancelled."""
        event = event or self._state.cancelled_event
        left = until - clock()
        while left > 0 and not event.is_set():
            if self.clock is SYSTEM_CLOCK:
                try:
                    await asyncio.wait_for(event.wait(), left)
                except TimeoutError:
                    pass
            else:  # another clock (a test's fake) decides how long a wait takes
                woken = asyncio.ensure_future(event.wait())
                slept = asyncio.ensure_future(self.clock.sleep(left))
                try:
                    await asyncio.wait({woken, slept}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    woken.cancel()
                    slept.cancel()
            left = until - clock()
        self._check_cancelled()

    def _check_cancelled(self) -> None:
        if self._state.stopping:
            raise RunInterrupted(f"task {self.task.id!r}: the engine is closing")
        if self._state.cancelled:
            raise TaskCancelled(f"task {self.task.id!r} was cancelled", task_id=self.task.id)


def _answer(step: StepRecord) -> Any:
    if step.status == "error":
        raise error_from_dict(step.error)
    return step.result
