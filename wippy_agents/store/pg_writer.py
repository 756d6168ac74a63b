"""Group commit for the PostgreSQL journal: the units of one loop tick in ONE statement.

``PgJournalWriter.write(rows, node, epoch)`` queues a *unit* (the rows of one
``journal_write``/``journal_write_many`` call) and returns a future. At the end
of the loop tick every queued unit goes to the server in one round trip: one
``INSERT … SELECT FROM unnest(…)`` (``BATCH_SQL``) that

* locks the tasks it names ``FOR SHARE`` (a concurrent claim by another node
  waits for this commit, or this statement sees the new owner and epoch);
* finds the *refused* units: a task that is gone, an owner or epoch that is not
  the unit's claim (fencing), or a row whose ``(task_id, seq)`` is already
  recorded other than as a ``started`` marker of the same name (at most once);
* writes every row of the other units (``ON CONFLICT`` finishes or restarts a
  ``started`` marker, as the one-row statement does).

A refused unit writes none of its rows (rejected whole); its waiter gets the
same refusal the one-row path raises (``LeaseLost``, ``TaskNotFound`` …, read
with one probe). The other units of the batch commit. While one batch is in
flight the next units queue for the one after (one statement in flight).
A lone unit (a sequential task) takes the plain one-row statements, in a
transaction when it has several rows; so does a batch naming one
``(task_id, seq)`` twice, unit by unit.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from ..errors import StoreError, WippyError
from .codec import STEP_COLUMNS
from .refusals import journal_refusal

__all__ = ["PgJournalWriter", "BATCH_SQL"]

_CASTS = ("text", "integer", "text", "text", "text", "text", "float8", "float8", "bigint", "float8", "text", "integer")
_N = len(_CASTS)
_ARRAYS = ", ".join(f"${i + 1}::{cast}[]" for i, cast in enumerate(_CASTS))
_U = ", ".join(STEP_COLUMNS)
BATCH_SQL = (
    f"WITH u AS (SELECT * FROM unnest({_ARRAYS}, ${_N + 1}::integer[], ${_N + 2}::text[], ${_N + 3}::bigint[])"
    f" AS u({_U}, unit, claim_node, claim_epoch)),"
    " t AS (SELECT id, owner, epoch FROM tasks WHERE id IN (SELECT task_id FROM u) FOR SHARE),"
    " bad AS (SELECT DISTINCT u.unit FROM u LEFT JOIN t ON t.id = u.task_id"
    " LEFT JOIN journal j ON j.task_id = u.task_id AND j.seq = u.seq"
    " WHERE t.id IS NULL"
    " OR (u.claim_node IS NOT NULL AND (t.owner IS DISTINCT FROM u.claim_node"
    " OR (u.claim_epoch IS NOT NULL AND t.epoch <> u.claim_epoch)))"
    " OR (j.task_id IS NOT NULL AND NOT (j.status = 'started' AND j.name = u.name)))"
    f" INSERT INTO journal ({_U}) SELECT {_U} FROM u WHERE u.unit NOT IN (SELECT unit FROM bad)"
    " ON CONFLICT (task_id, seq) DO UPDATE SET"
    " status = excluded.status, result = excluded.result, error = excluded.error,"
    " finished_at = excluded.finished_at, tokens = excluded.tokens, cost_usd = excluded.cost_usd,"
    " started_at = CASE WHEN excluded.status = 'started' THEN excluded.started_at ELSE journal.started_at END,"
    " node = COALESCE(excluded.node, journal.node),"
    " attempt = CASE WHEN excluded.status = 'started' THEN journal.attempt + 1"
    " ELSE GREATEST(journal.attempt, excluded.attempt) END"
    " WHERE journal.status = 'started' AND journal.name = excluded.name"
    " RETURNING task_id, seq"
)
_PROBE = ("SELECT t.owner AS owner, t.epoch AS epoch, j.name AS name, j.status AS status FROM tasks t"
          " LEFT JOIN journal j ON j.task_id = t.id AND j.seq = $2 WHERE t.id = $1")
MAX_ROWS = 2000  # rows in one statement


class PgJournalWriter:
    """Queues journal units of one loop tick and sends them as one statement (module doc).

    ``acquire(op)`` is the store's pooled-connection guard (``PostgresStore._guard``);
    ``one(conn, rows, node, epoch)`` writes a unit the one-statement-per-row way.
    """

    def __init__(self, acquire: Callable[[str], Any],
                 one: Callable[[Any, list[tuple], str | None, int | None], Awaitable[None]]) -> None:
        self._acquire = acquire
        self._one = one
        self._queue: list[tuple[list[tuple], str | None, int | None, asyncio.Future]] = []
        self._scheduled = False
        self._inflight = False
        self.stats = {"commits": 0, "units": 0, "refused": 0}

    def write(self, rows: list[tuple], node: str | None, epoch: int | None) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.append((rows, node, epoch, fut))
        if not self._scheduled and not self._inflight:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    async def close(self) -> None:
        while self._queue or self._inflight or self._scheduled:
            await asyncio.sleep(0.001)

    def _flush(self) -> None:
        self._scheduled = False
        batch, size = [], 0
        while self._queue and (not batch or size + len(self._queue[0][0]) <= MAX_ROWS):
            unit = self._queue.pop(0)
            size += len(unit[0])
            if not unit[3].cancelled():
                batch.append(unit)
        if not batch:
            self._next()
            return
        self._inflight = True
        asyncio.ensure_future(self._send(batch))

    def _next(self) -> None:
        if self._queue and not self._scheduled and not self._inflight:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def _send(self, batch: list) -> None:
        try:
            keys = [(r[0], r[1]) for u in batch for r in u[0]]
            async with self._acquire("journal_write") as conn:
                if len(batch) == 1 or len(set(keys)) != len(keys):  # one unit: the plain statements
                    outcomes = [await self._unit(conn, u) for u in batch]
                else:
                    outcomes = await self._statement(conn, batch)
            self.stats["commits"] += 1
            self.stats["units"] += len(batch)
            for (*_u, fut), exc in zip(batch, outcomes):
                if not fut.done():
                    fut.set_result(None) if exc is None else fut.set_exception(exc)
        except BaseException as exc:  # StoreError from the guard; cancellation at close
            err = exc if isinstance(exc, WippyError) else StoreError(f"journal_write failed: {exc}", op="journal_write")
            for *_u, fut in batch:
                if not fut.done():
                    fut.set_exception(err)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._inflight = False
            self._next()

    async def _unit(self, conn: Any, unit: tuple) -> BaseException | None:
        rows, node, epoch, _fut = unit
        try:
            async with conn.transaction():
                await self._one(conn, rows, node, epoch)
        except WippyError as exc:
            return exc
        return None

    async def _statement(self, conn: Any, batch: list) -> list[BaseException | None]:
        cols: list[list[Any]] = [[] for _ in range(_N + 3)]
        for i, (rows, node, epoch, _fut) in enumerate(batch):
            for r in rows:
                for c, v in enumerate(r):
                    cols[c].append(v)
                cols[_N].append(i)
                cols[_N + 1].append(node)
                cols[_N + 2].append(None if epoch is None or node is None else int(epoch))
        written = {(r["task_id"], r["seq"]) for r in await conn.fetch(BATCH_SQL, *cols)}
        out: list[BaseException | None] = []
        for rows, node, epoch, _fut in batch:
            missing = [r for r in rows if (r[0], r[1]) not in written]
            if not missing:
                out.append(None)
                continue
            self.stats["refused"] += 1
            r = missing[0]
            probe = await conn.fetchrow(_PROBE, r[0], r[1])
            out.append(journal_refusal({"task_id": r[0], "seq": r[1], "name": r[2]}, node, probe,
                                       epoch=None if node is None else epoch))
        return out
