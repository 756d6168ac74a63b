"""The step journal of one task run: replay lookups and durable writes.

A ``Journal`` is loaded once when a run starts (the steps recorded by earlier
runs) and then written step by step. Replay follows the DBOS model: steps are
keyed by ``(task_id, seq)``, and the name recorded at a seq must equal the
name the code asks for now, else ``NondeterminismError``.

One round trip per step. A step's result is journaled before the next
step's function runs — not necessarily before its own ``ctx.step`` returns:
a finished row waits (at most ``flush_delay``) to ride along with the next
write, e.g. the ``started`` marker of the next step, in one transaction
(``journal_write_many``), and is flushed before any other step's function
runs. A crash inside that window loses only the end of a step whose effect
happened, exactly like a crash between the effect and its write: the step is
run again if idempotent, else the task is stranded. Errors, timers and the
end of a run are written at once.

Writes are guarded by our lease (``node=``) and fenced on the epoch of our
claim (``epoch=``): after a takeover the store refuses them with
``LeaseLost`` in the same statement that would have written the row (so a
node paused past its lease writes nothing when it wakes). This class is the
one place a run writes its journal from. They retry through store outages; a batch
whose earlier attempt did land (the connection dropped after the commit) is
recognised by reloading, so a step is never recorded twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from typing import Any

from ..errors import JournalCorrupt, LeaseLost, NondeterminismError, StoreError, TaskError
from ..store.base import StepRecord, Store
from .retry import STORE_RETRY, RetryPolicy, retry_store

__all__ = ["Journal", "load_journal", "check_row", "to_json_data", "encode_json"]

log = logging.getLogger(__name__)

_STATUSES = ("started", "ok", "error")


def check_row(step: StepRecord, task_id: str) -> StepRecord:
    """Validate one loaded journal row; raise ``JournalCorrupt`` naming it."""
    where = f"journal row (task {task_id!r}, seq {getattr(step, 'seq', '?')!r})"
    if not isinstance(step, StepRecord):
        raise JournalCorrupt(f"{where} is not a step record: {type(step).__name__}", task_id=task_id)
    if not isinstance(step.seq, int) or not isinstance(step.name, str) or not step.name:
        raise JournalCorrupt(f"{where} has a bad seq or name: {step.name!r}", task_id=task_id, seq=step.seq)
    if step.status not in _STATUSES:
        raise JournalCorrupt(f"{where} has an unknown status {step.status!r}", task_id=task_id, seq=step.seq)
    if step.status == "error" and not (isinstance(step.error, dict) and isinstance(step.error.get("type"), str)):
        raise JournalCorrupt(
            f"{where} is marked 'error' but holds no error record: {step.error!r}", task_id=task_id, seq=step.seq
        )
    return step


# The store codec's settings: the text made here is exactly what the store would write.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def to_json_data(value: Any, *, what: str) -> Any:
    """Return ``value`` as it will read back from the journal (a JSON round trip).

    The first run and every replay must see the same data (tuples become
    lists, dict keys strings). Raises ``TypeError``/``ValueError`` for data
    that JSON cannot hold, with ``what`` in the message.
    """
    return encode_json(value, what=what)[0]


def encode_json(value: Any, *, what: str) -> tuple[Any, str | None]:
    """``(to_json_data(value), its JSON text)``: one encode serves the round trip and
    the journal row (``StepRecord.result_json``). The text is None for a scalar,
    which the store encodes itself at no cost. Raises like ``to_json_data``."""
    if value is None or type(value) in (str, int, bool):
        return value, None
    if type(value) is float:
        if not math.isfinite(value):
            raise ValueError(f"{what} returned {value!r}, which JSON cannot hold")
        return value, None
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{what} returned data JSON cannot hold: {exc}") from None
    return json.loads(text), text


async def load_journal(store: Store, task_id: str, *, policy: RetryPolicy = STORE_RETRY) -> list[StepRecord]:
    """All recorded steps of ``task_id``, validated; retries store outages.

    Raises ``JournalCorrupt`` at once for a row that fails to decode.
    """
    what = f"loading the journal of task {task_id!r}"
    steps = await retry_store(lambda: store.journal_load(task_id), policy, what=what)
    return [check_row(step, task_id) for step in steps]


class Journal:
    """The recorded steps of one task plus the (batching) writer for new ones.

    ``close()`` it when the run ends (it owns the delayed-flush task).
    """

    def __init__(
        self,
        store: Store,
        task_id: str,
        steps: list[StepRecord],
        *,
        node: str | None,
        epoch: int | None = None,
        lease: Any = None,
        policy: RetryPolicy = STORE_RETRY,
        flush_delay: float = 0.005,
    ) -> None:
        self._store = store
        self.task_id = task_id
        self._node = node
        self._epoch = epoch if epoch is not None or lease is None else lease.epoch
        self._lease = lease  # a ``leases.Lease``: checked before a step's effect runs
        self._policy = policy
        self._flush_delay = flush_delay
        self._recorded: dict[int, StepRecord] = {step.seq: step for step in steps}
        self.last_recorded_seq = max(self._recorded, default=0)
        self._pending: list[StepRecord] = []
        self._attempts: dict[int, int] = {}  # seq -> attempt, for steps started again in this run
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0  # loop time by which the oldest waiting row must be written
        self._flusher: asyncio.Task | None = None
        self._failure: BaseException | None = None  # a delayed flush failed: the next write raises it

    def count(self, name: str, *, before: int) -> int:
        """How many steps named ``name`` the journal holds (recorded or finished in this run) before ``before``."""
        return sum(1 for seq, step in self._recorded.items() if seq < before and step.name == name)

    def recorded(self, seq: int, name: str) -> StepRecord | None:
        """The step recorded at ``seq``, or None past the journal's end.

        Raises ``NondeterminismError`` when it was recorded under another name.
        """
        step = self._recorded.get(seq)
        if step is not None and step.name != name:
            raise NondeterminismError(
                f"task {self.task_id!r} diverged from its journal at step {seq}: "
                f"the journal recorded {step.name!r} but the code now asks for {name!r} "
                "(the code changed since the task started; the journal is kept as it was)",
                task_id=self.task_id,
                seq=seq,
                expected=step.name,
                got=name,
            )
        return step

    async def ensure_lease(self) -> None:
        """Before an effect: raise ``LeaseLost`` unless our lease holds (no round trip while it is fresh)."""
        if self._lease is not None:
            await self._lease.ensure()

    async def start(self, seq: int, name: str) -> float:
        """Durably record that step ``seq`` starts (before its side effect), with any
        finished rows still waiting. Returns the start time."""
        at = time.time()
        before = self._recorded.get(seq)  # a started row of an earlier run: this is its next attempt
        attempt = before.attempt + 1 if before is not None and before.status == "started" else 1
        if attempt > 1:
            self._attempts[seq] = attempt
        await self._write([StepRecord(task_id=self.task_id, seq=seq, name=name, status="started", started_at=at,
                                      node=self._node, attempt=attempt)])
        return at

    async def finish(
        self,
        seq: int,
        name: str,
        *,
        started_at: float,
        result: Any = None,
        error: dict[str, Any] | None = None,
        tokens: int = 0,
        cost_usd: float = 0.0,
        note: dict[str, Any] | None = None,
        durable: bool = False,
        result_json: str | None = None,
        tries: int = 1,
    ) -> StepRecord:
        """Record the outcome of step ``seq``; returns the record.

        A result waits for the next write (or ``flush_delay``) unless
        ``durable``; an error is written at once. ``note`` marks an 'ok' row
        specially (a skipped step keeps its skip record there; replay ignores
        it). ``result_json`` is ``result`` already encoded (``encode_json``).
        ``tries``: how many times this run called the step's function (its
        retries); the row's attempt counts them on top of earlier runs'.
        Raises ``LeaseLost`` when another node owns the task now, or the
        failure of an earlier delayed flush.
        """
        step = StepRecord(
            task_id=self.task_id,
            seq=seq,
            name=name,
            status="error" if error is not None else "ok",  # decided before ``note`` fills the column
            result=result,
            error=error if error is not None else note,
            started_at=started_at,
            finished_at=time.time(),
            tokens=tokens,
            cost_usd=cost_usd,
            node=self._node,
            attempt=self._attempts.get(seq, 1) + tries - 1,
            result_json=result_json,
        )
        self._recorded[seq] = step
        if durable or error is not None:
            await self._write([step])
        else:
            self._raise_failure()
            if not self._pending:
                self._due = asyncio.get_running_loop().time() + self._flush_delay
            self._pending.append(step)
            self._arm()
        return step

    async def flush(self) -> None:
        """Write every finished row still waiting (no round trip if none). Raises like ``finish``."""
        if self._pending or self._failure is not None:
            await self._write([])

    async def close(self) -> None:
        """Stop the delayed flush (without writing: call ``flush`` first to keep the rows)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        flusher, self._flusher = self._flusher, None
        if flusher is not None and not flusher.done():
            flusher.cancel()
            await asyncio.wait([flusher])

    # A timer, not a task per step: a run of quick steps never creates a task,
    # since each next write takes the waiting rows along. Nor is it re-armed
    # per step: a write leaves it be, and when it fires it looks at what waits
    # now (nothing, or rows due later: it re-arms for their due time).
    def _arm(self, at: float | None = None) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_at(self._due if at is None else at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if not self._pending:
            return
        loop = asyncio.get_running_loop()
        if self._lock.locked() or (self._flusher is not None and not self._flusher.done()):
            # A write is in flight; queueing behind it would make the run's next
            # write wait for ours (two round trips). Look again shortly.
            self._arm(loop.time() + self._flush_delay)
        elif loop.time() < self._due:
            self._arm()  # the rows waiting now came after the ones this timer was set for
        else:
            self._flusher = asyncio.create_task(self._flush_now(), name=f"journal-flush:{self.task_id}")

    async def _flush_now(self) -> None:
        try:
            await self._write([])
        except Exception as exc:  # LeaseLost, StoreError: the run's next write raises it
            self._failure = exc

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _write(self, steps: list[StepRecord]) -> None:
        self._raise_failure()
        async with self._lock:  # a batch lands before any later write is sent
            batch, self._pending = (self._pending + steps if steps else self._pending), []
            if not batch:
                return
            try:
                await self._send(batch)  # the common case: no retry machinery per step
            except StoreError as exc:
                await self._retry(batch, exc)

    async def _retry(self, batch: list[StepRecord], failure: StoreError) -> None:
        """The first send failed with ``failure``: go on as ``retry_store`` would have from
        there (same delays and attempts), never recording the batch twice."""
        attempts = 0

        async def attempt() -> None:
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                raise failure  # retry_store decides about it: permanent, or wait and try again
            if await self._landed(batch):
                return
            await self._send(batch)

        what = f"journaling step {batch[-1].seq} {batch[-1].name!r} of task {self.task_id!r}"
        await retry_store(attempt, self._policy, what=what)

    async def _send(self, batch: list[StepRecord]) -> None:
        epoch = self._epoch if self._lease is None else self._lease.epoch
        try:
            if len(batch) == 1:
                await self._store.journal_write(batch[0], node=self._node, epoch=epoch)
            else:
                await self._store.journal_write_many(batch, node=self._node, epoch=epoch)
        except LeaseLost:
            if self._lease is not None:
                self._lease.lose()  # fenced out: this run sends nothing more
            raise
        except TaskError as exc:
            if type(exc) is not TaskError:  # NondeterminismError ... as they are
                raise
            # The store contract names a plain TaskError for a lost lease.
            if self._lease is not None:
                self._lease.lose()
            raise LeaseLost(str(exc), task_id=self.task_id) from exc

    async def _landed(self, batch: list[StepRecord]) -> bool:
        """Did an earlier attempt commit this batch (all or nothing) before failing?"""
        stored = {step.seq: step for step in await self._store.journal_load(self.task_id)}
        last = batch[-1]
        found = stored.get(last.seq)
        return found is not None and (found.status == last.status or last.status == "started")
