"""The step journal of one task run: replay lookups and durable writes.

A ``Journal`` is loaded once when a run starts (the steps recorded by earlier
runs) and then written step by step. Replay follows the DBOS model: steps are
keyed by ``(task_id, seq)``, and the name recorded at a seq must equal the
name the code asks for now, else ``NondeterminismError``.

Every write is one store round trip (``journal_write``) guarded by our lease
(``node=``): after a takeover the store refuses our writes with ``LeaseLost``.
Writes retry through store outages; a finish whose earlier attempt did land
(the connection dropped after the commit) is recognised by reloading, so a
step is never recorded twice.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

from ..errors import JournalCorrupt, LeaseLost, NondeterminismError, TaskError
from ..store.base import StepRecord, Store
from .retry import STORE_RETRY, RetryPolicy, retry_store

__all__ = ["Journal", "load_journal", "check_row", "to_json_data"]

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


def to_json_data(value: Any, *, what: str) -> Any:
    """Return ``value`` as it will read back from the journal (a JSON round trip).

    The first run and every replay must see the same data (tuples become
    lists, dict keys strings). Raises ``TypeError``/``ValueError`` for data
    that JSON cannot hold, with ``what`` in the message.
    """
    if value is None or type(value) in (str, int, bool):
        return value
    if type(value) is float:
        if not math.isfinite(value):
            raise ValueError(f"{what} returned {value!r}, which JSON cannot hold")
        return value
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{what} returned data JSON cannot hold: {exc}") from None


async def load_journal(store: Store, task_id: str, *, policy: RetryPolicy = STORE_RETRY) -> list[StepRecord]:
    """All recorded steps of ``task_id``, validated; retries store outages.

    Raises ``JournalCorrupt`` at once for a row that fails to decode.
    """
    what = f"loading the journal of task {task_id!r}"
    steps = await retry_store(lambda: store.journal_load(task_id), policy, what=what)
    return [check_row(step, task_id) for step in steps]


class Journal:
    """The recorded steps of one task plus the writer for new ones."""

    def __init__(
        self,
        store: Store,
        task_id: str,
        steps: list[StepRecord],
        *,
        node: str | None,
        policy: RetryPolicy = STORE_RETRY,
    ) -> None:
        self._store = store
        self.task_id = task_id
        self._node = node
        self._policy = policy
        self._recorded: dict[int, StepRecord] = {step.seq: step for step in steps}
        self.last_recorded_seq = max(self._recorded, default=0)

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

    async def start(self, seq: int, name: str) -> float:
        """Record that step ``seq`` started (before its side effect). Returns the start time."""
        at = time.time()
        step = StepRecord(task_id=self.task_id, seq=seq, name=name, status="started", started_at=at)
        await retry_store(lambda: self._write(step), self._policy, what=f"journaling step {seq} {name!r}")
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
    ) -> StepRecord:
        """Record the outcome of step ``seq`` (one round trip); returns what is recorded.

        Retries store outages; a retry that finds the step already finished
        (an earlier attempt committed) returns that record instead of writing
        it twice. Raises ``LeaseLost`` when another node owns the task now.
        ``note`` marks an 'ok' row specially (a skipped step keeps its skip
        record there; replay ignores it).
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
        )
        attempts = 0

        async def attempt() -> StepRecord:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                landed = await self._find(seq)
                if landed is not None and landed.status != "started":
                    return landed
            await self._write(step)
            return step

        recorded = await retry_store(attempt, self._policy, what=f"journaling the end of step {seq} {name!r}")
        self._recorded[seq] = recorded
        return recorded

    async def _write(self, step: StepRecord) -> None:
        try:
            await self._store.journal_write(step, node=self._node)
        except TaskError as exc:
            if type(exc) is not TaskError:  # LeaseLost, NondeterminismError ... as they are
                raise
            # The store contract names a plain TaskError for a lost lease.
            raise LeaseLost(str(exc), task_id=self.task_id, seq=step.seq) from exc

    async def _find(self, seq: int) -> StepRecord | None:
        for step in await self._store.journal_load(self.task_id):
            if step.seq == seq:
                return step
        return None
