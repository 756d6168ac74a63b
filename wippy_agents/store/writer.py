"""Group commit for the SQLite journal: every step written in one loop tick, one transaction.

``JournalWriter.write(rows, node, epoch)`` queues a *unit* (the rows of one
``journal_write``/``journal_write_many`` call) and returns a future. At the
end of the loop tick (``call_soon``) every queued unit goes into ONE
``BEGIN IMMEDIATE … COMMIT``; each waiter is released only after that commit.
The lease and epoch check (fencing) is in each row's statement
(``sqlite_sql.journal_write``), inside the same transaction: a unit whose
task was taken over is rolled back whole (a savepoint per multi-row unit) and
its waiter gets ``LeaseLost``; the other units of the batch commit.

Where the transaction runs — chosen from measurements (``bench/store_micro.py``,
issue 17): with ``synchronous=NORMAL`` a WAL commit is a ``write()`` with no
fsync, ~25 µs for one row, so it runs ON THE LOOP THREAD on a second
connection (``busy_timeout = 0``); aiosqlite's thread hand-off alone costs
50-130 µs. The two things that could stall the loop are kept off it:

* a busy lock (another process, or a checkpoint, holds the write lock): the
  loop connection fails at once with SQLITE_BUSY and the batch is handed to
  aiosqlite's thread, whose connection waits (``busy_timeout``) there;
* WAL checkpoints: the loop connection never checkpoints
  (``wal_autocheckpoint = 0``); every ``CHECKPOINT_COMMITS`` commits a PASSIVE
  checkpoint runs on aiosqlite's thread, and when the WAL has grown past
  ``wal_limit`` bytes a TRUNCATE checkpoint there bounds it (writers meanwhile
  take the thread path and queue behind it: back-pressure, not a stall).

With ``synchronous=full`` (``sqlite:///path.db?synchronous=full``: durable
against power loss) every commit fsyncs, which must not happen on the loop:
then the batch of each wake-up runs on aiosqlite's thread (one hand-off per
batch, one batch in flight; units queue for the next).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any, Callable

from ..errors import StoreError, WippyError
from . import sqlite_sql as q

__all__ = ["JournalWriter", "write_batch", "CHECKPOINT_COMMITS"]

log = logging.getLogger(__name__)

CHECKPOINT_COMMITS = 200  # loop commits between two PASSIVE checkpoints (each ~1-4 pages at NORMAL)
MAX_UNITS = 512  # units in one transaction: bounds what one commit holds the loop for


def write_batch(db: sqlite3.Connection, units: list[tuple[list[tuple], str | None, int | None]],
                own_tx: bool = True) -> list[BaseException | None]:
    """Write ``units`` in one transaction; the outcome of each (None, or the refusal that
    rolled that unit back whole). A database failure rolls back everything and raises."""
    out: list[BaseException | None] = []
    if len(units) == 1 and len(units[0][0]) == 1:  # one statement autocommits: no BEGIN/COMMIT round
        rows, node, epoch = units[0]
        try:
            q.journal_write(db, rows[0], node, epoch)
        except WippyError as exc:
            return [exc]
        return [None]
    if own_tx:
        db.execute("BEGIN IMMEDIATE")
    try:
        for rows, node, epoch in units:
            if len(rows) == 1:  # one statement: a refusal wrote nothing, no savepoint needed
                try:
                    q.journal_write(db, rows[0], node, epoch)
                    out.append(None)
                except WippyError as exc:
                    out.append(exc)
                continue
            db.execute("SAVEPOINT unit")
            try:
                for params in rows:
                    q.journal_write(db, params, node, epoch)
            except WippyError as exc:
                db.execute("ROLLBACK TO unit")
                out.append(exc)
            else:
                out.append(None)
            db.execute("RELEASE unit")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return out


def _checkpoint(db: sqlite3.Connection, limit_frames: int) -> tuple[int, int]:
    """On aiosqlite's thread: PASSIVE, then TRUNCATE if the WAL is past its bound. (frames, mode)"""
    busy, frames, done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if frames > limit_frames:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return frames, 1
    return frames, 0


class JournalWriter:
    """Queues journal units of one loop tick and commits them together (see the module doc).

    ``call(op, fn, *args)`` is the store's hand-off to aiosqlite's thread
    (``SqliteStore._call``); ``path`` the database file; ``full`` selects the
    thread path for every batch (``synchronous=FULL``).
    """

    def __init__(self, path: str, call: Callable[..., Any], *,
                 full: bool, safe_url: str, wal_limit: int = 64 << 20) -> None:
        self._call = call
        self._full = full
        self._safe_url = safe_url
        self._queue: list[tuple[list[tuple], str | None, int | None, asyncio.Future]] = []
        self._scheduled = False
        self._inflight = False  # thread path: one batch at a time
        self._commits = 0
        self._checkpointing: asyncio.Task | None = None
        self._limit_frames = 1
        self.stats = {"commits": 0, "units": 0, "thread_batches": 0, "checkpoints": 0, "truncates": 0,
                      "max_wal_frames": 0}
        self._db: sqlite3.Connection | None = None
        if not full:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout = 0")  # never wait on the loop: BUSY goes to the thread path
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints run on aiosqlite's thread
            db.execute(f"PRAGMA journal_size_limit = {int(wal_limit)}")
            page = db.execute("PRAGMA page_size").fetchone()[0]
            self._limit_frames = max(1, wal_limit // (page + 24))
            self._db = db

    # -- the API of the store -------------------------------------------------------
    def write(self, rows: list[tuple], node: str | None, epoch: int | None) -> asyncio.Future:
        """Queue one unit; the future resolves after the commit that holds it (or with its refusal)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.append((rows, node, epoch, fut))
        if not self._scheduled and not self._inflight:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    async def close(self) -> None:
        """Finish queued writes and a running checkpoint; close the loop connection."""
        while self._queue or self._inflight:
            if self._queue and not self._scheduled and not self._inflight:
                self._flush()
            await asyncio.sleep(0)
        if self._checkpointing is not None:
            await asyncio.wait([self._checkpointing])
        db, self._db = self._db, None
        if db is not None:
            db.close()

    # -- the batch ------------------------------------------------------------------
    def _flush(self) -> None:
        self._scheduled = False
        batch, self._queue = self._queue[:MAX_UNITS], self._queue[MAX_UNITS:]
        if self._queue:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        batch = [u for u in batch if not u[3].cancelled()]
        if not batch:
            return
        if self._db is not None:
            try:
                outcomes = write_batch(self._db, [u[:3] for u in batch])
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    return self._fail(batch, exc)
                self._to_thread(batch)  # the write lock is taken: wait for it off the loop
                return
            except (sqlite3.Error, WippyError) as exc:
                return self._fail(batch, exc)
            self._done(batch, outcomes)
            self._commits += 1
            if self._commits >= CHECKPOINT_COMMITS and self._checkpointing is None:
                self._commits = 0
                self._checkpointing = asyncio.create_task(self._checkpoint(), name="sqlite-checkpoint")
            return
        self._to_thread(batch)

    def _to_thread(self, batch: list) -> None:
        self._inflight = True
        asyncio.create_task(self._thread_batch(batch), name="journal-batch")

    async def _thread_batch(self, batch: list) -> None:
        try:
            outcomes = await self._call("journal_write", write_batch, [u[:3] for u in batch])
        except BaseException as exc:  # StoreError from the hand-off, cancellation at close
            self._fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self.stats["thread_batches"] += 1
            self._done(batch, outcomes)
        finally:
            self._inflight = False
            if self._queue and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)

    def _done(self, batch: list, outcomes: list) -> None:
        self.stats["commits"] += 1
        self.stats["units"] += len(batch)
        for (_rows, _node, _epoch, fut), exc in zip(batch, outcomes):
            if fut.done():
                continue
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)

    def _fail(self, batch: list, exc: BaseException) -> None:
        if not isinstance(exc, WippyError):
            exc = StoreError(f"store {self._safe_url}: journal_write failed: {exc}", op="journal_write")
        for *_u, fut in batch:
            if not fut.done():
                fut.set_exception(exc)

    async def _checkpoint(self) -> None:
        try:
            frames, truncated = await self._call("checkpoint", _checkpoint, self._limit_frames)
            self.stats["checkpoints"] += 1
            self.stats["truncates"] += truncated
            self.stats["max_wal_frames"] = max(self.stats["max_wal_frames"], frames)
        except Exception as exc:  # noqa: BLE001 - a failed checkpoint is retried by the next one
            log.warning("WAL checkpoint failed: %s", exc)
        finally:
            self._checkpointing = None
