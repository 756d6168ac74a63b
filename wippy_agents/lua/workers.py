"""``LuaWorkers``: the threads that run Lua, so that Lua never blocks the event loop.

lupa releases the GIL while Lua runs, so a resume of a Lua coroutine can run
on a worker thread while the loop keeps serving every other process, timer
and lease.  The loop only orchestrates: it hands a resume to a worker and
awaits the answer; the answer comes back through ``call_soon_threadsafe``.
One worker per core (two parallel tool calls compute in parallel), more
only to replace a stuck one (below).

Every job carries a wall-clock deadline (the call's, or the process slice's,
fixed when a worker starts it, so time spent queued behind other work is not
charged to a slice).  Lua code stops itself at the deadline (the count hook);
a C function cannot be interrupted (a pattern the guard let through, a big
``table.sort``), so a watchdog thread answers any job still running
``GRACE`` seconds past its deadline with ``LuaLimitExceeded`` at once, marks
its state abandoned (it is never touched from the loop again and never
reused), starts a replacement worker, and lets the stuck thread end when the
C call returns; the CPU it burned after its deadline is logged and counted in
``stuck_cpu``.  A cancelled resume (its process was killed) kills its state:
the count hook then raises on its next check.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from queue import SimpleQueue
from typing import Any, Callable

from wippy_agents.errors import LuaLimitExceeded

__all__ = ["LuaWorkers", "default_workers", "GRACE"]

log = logging.getLogger(__name__)

GRACE = 0.02  # past its deadline, a job whose Lua did not stop itself is answered by the watchdog
SPIN = 0.0005  # how long the loop waits for a resume synchronously before awaiting it


class _Job:
    __slots__ = ("fn", "args", "loop", "future", "state", "timeout", "deadline", "started", "done", "abandoned", "replaced",
                 "value", "exc", "finished", "awaited")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], state: Any, timeout: float | None) -> None:
        self.fn, self.args, self.state = fn, args, state
        self.loop: asyncio.AbstractEventLoop | None = None
        self.future: asyncio.Future | None = None
        self.timeout = timeout  # relative: the slice deadline is set when a worker starts the job
        self.deadline = 0.0
        self.started = 0.0
        self.done = False
        self.abandoned = False  # nobody waits for it any more (watchdog, or a cancelled caller)
        self.replaced = False   # the watchdog started another worker in this one's place
        self.awaited = False  # the loop stopped waiting synchronously: answer through the future
        self.value: Any = None
        self.exc: BaseException | None = None
        self.finished = threading.Lock()
        self.finished.acquire()


def _settle(future: asyncio.Future, value: Any, exc: BaseException | None) -> None:
    if future.done():
        return  # the awaiting side was cancelled or already answered by the watchdog
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(value)


class LuaWorkers:
    """A pool of Lua worker threads plus a watchdog; ``await workers.run(state, fn, *args)``.

    >>> workers = LuaWorkers(1)                                   # doctest: +SKIP
    >>> await workers.run(state, step, thread, timeout=None)      # doctest: +SKIP
    """

    def __init__(self, size: int | None = None) -> None:
        self.size = max(1, size or os.cpu_count() or 1)
        self._queue: SimpleQueue[_Job | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._current: dict[int, _Job] = {}  # worker id -> the job it runs (the watchdog's view)
        self._ids = 0
        self._threads = 0
        self._started = False
        self.abandoned = 0      # jobs answered by the watchdog
        self.stuck_cpu = 0.0    # CPU seconds those burned after their deadline
        self.jobs = 0
        self.awaited = 0        # jobs not answered within SPIN: answered through a future

    # -- threads -----------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
            for _ in range(self.size):
                self._spawn_worker()
        threading.Thread(target=self._watch, name="lua-watchdog", daemon=True).start()

    def _spawn_worker(self) -> None:  # with self._lock held
        self._threads += 1
        self._ids += 1
        threading.Thread(target=self._work, args=(self._ids,), name=f"lua-worker-{self._ids}", daemon=True).start()

    def _work(self, wid: int) -> None:
        queue, lock, current = self._queue, self._lock, self._current
        while True:
            job = queue.get()
            if job is None:
                return
            if job.future is not None and job.future.done():  # cancelled while queued: never started
                continue
            now = time.monotonic()
            job.started = now
            state = job.state
            if job.timeout is not None:
                state.deadline = now + job.timeout
            job.deadline = state.deadline
            current[wid] = job  # a dict store is atomic; the watchdog only reads
            cpu0 = time.thread_time()
            value: Any = None
            exc: BaseException | None = None
            try:
                value = job.fn(*job.args)
            except BaseException as e:  # handed to the awaiting side
                exc = e
            with lock:
                job.done = True
                job.value, job.exc = value, exc
                current.pop(wid, None)
                abandoned = job.abandoned
                awaited = job.awaited
            job.finished.release()
            if abandoned:
                replaced = job.replaced
                if replaced:
                    late = max(0.0, time.thread_time() - cpu0 - (job.deadline - job.started))
                    with lock:
                        self.stuck_cpu += late
                        self._threads -= 1
                    log.warning("a Lua call answered at its wall-clock limit kept a worker for %.3f s more "
                                "(~%.3f s CPU); its state was discarded", time.monotonic() - job.deadline, late)
                on_done = getattr(state, "after_abandon", None)
                if on_done is not None:  # its logs, flushed here: the loop no longer touches the state
                    try:
                        on_done(state)
                    except Exception:
                        log.exception("clean-up of an abandoned Lua state failed")
                job = state = value = exc = None
                if replaced:
                    return  # a replacement worker took this one's place
                continue
            if awaited:
                try:
                    job.loop.call_soon_threadsafe(_settle, job.future, value, exc)
                except RuntimeError:  # the loop closed meanwhile: nobody waits for this answer
                    pass
            job = state = value = exc = None  # hold nothing of a finished call while idle

    def _watch(self) -> None:
        # polls (GRACE / 2): nothing on the hot path has to wake it
        lock, current = self._lock, self._current
        while True:
            time.sleep(GRACE / 2)
            now = time.monotonic()
            late = [job for job in list(current.values()) if not job.done and job.deadline + GRACE < now]
            for job in late:
                with lock:
                    if job.done or job.replaced or not (job.awaited or job.abandoned):
                        continue
                    job.abandoned = job.replaced = True
                    self.abandoned += 1
                    job.state.abandon()
                    self._spawn_worker()
                limits = job.state.limits
                error = LuaLimitExceeded(f"wall-clock limit exceeded ({limits.timeout:g} s) in a C function "
                                         "that cannot be interrupted; the state was discarded", limit="timeout")
                try:
                    job.loop.call_soon_threadsafe(_settle, job.future, None, error)
                except RuntimeError:
                    pass

    # -- the loop side -------------------------------------------------------
    async def run(self, state: Any, fn: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        """Run ``fn(*args)`` (a resume of ``state``) on a worker; its deadline is ``state.deadline``,
        or ``timeout`` seconds from when a worker starts it (then also stored in ``state.deadline``).

        The loop waits for the answer synchronously for at most ``SPIN`` seconds (a
        short resume then costs one thread hand-off and no loop wake-up), then
        awaits it like any other future.
        """
        if not self._started:
            self._start()
        job = _Job(fn, args, state, timeout)
        self.jobs += 1
        self._queue.put(job)
        if job.finished.acquire(True, SPIN):
            if job.exc is not None:
                raise job.exc
            return job.value
        self.awaited += 1
        loop = asyncio.get_running_loop()
        job.loop, job.future = loop, loop.create_future()
        with self._lock:
            if job.done:
                if job.exc is not None:
                    raise job.exc
                return job.value
            job.awaited = True
        try:
            return await job.future
        except asyncio.CancelledError:
            with self._lock:
                running = job.started and not job.done
                if running:  # the loop must not touch the state while a worker is inside it
                    job.abandoned = True
                    state.abandoned = True
            state.kill()  # if it runs, the hook raises at its next check; the result is dropped
            raise
        finally:
            job = args = fn = None  # a traceback keeps this frame, not the Lua values


_DEFAULT: LuaWorkers | None = None
_DEFAULT_LOCK = threading.Lock()


def default_workers() -> LuaWorkers:
    """The process-wide pool (threads start on first use)."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                _DEFAULT = LuaWorkers()
    return _DEFAULT
