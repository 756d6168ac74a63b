"""The one Lua driver core: run a Lua thread, serving its host requests.

Lua code that must wait (``time.sleep``, ``funcs.call``, ``receive`` ...) is
a small Lua wrapper that ``coroutine.yield``s a request ``(op, args)`` to
this driver (Lua called from a Python callback cannot yield, so no Python
callable is ever called from Lua).  The driver awaits the async handler for
``op`` and resumes the thread with the answer -- ``value, nil``, several
values for a ``Resume``, or ``nil, message`` when the handler raised a
``WippyError`` (SPEC §5's error style).  Each waiting thread is a suspended
coroutine plus one awaiting Python frame, so thousands wait on one loop.

Every resume runs on a Lua worker thread (``workers.py``): Lua never blocks
the event loop, and a resume past its wall clock is answered with
``LuaLimitExceeded`` at once even when it is stuck in a C function.

``run`` serves both kinds of code:

* a call (``slicing=None``; function calls, agents, workflows): one
  instruction budget and one deadline (``state.start``) for the whole call,
  host waits included -- each wait is bounded by the time left;
* a process (``slicing=Slicing(...)``): the budget and the deadline hold per
  *slice*, the computing between two waits; ``Slicing.waits(op, args)`` says
  which requests end a slice, and a host wait itself is not bounded.

It raises ``LuaError`` for a Lua error, ``LuaLimitExceeded`` when a limit
tripped; control signals (``errors.ControlSignal``) and ``CancelledError``
raised by a handler pass through untouched.  Log records are flushed when
the code waits, ends, fails or hits a limit (see ``flush_logs``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

from lupa.lua54 import LuaMemoryError

from wippy_agents.errors import LuaError, LuaLimitExceeded, WippyError
from wippy_agents.lua.sandbox import LuaState
from wippy_agents.lua.value import from_lua, to_lua
from wippy_agents.lua.workers import LuaWorkers, default_workers

__all__ = ["drive", "run", "Handler", "Resume", "Slicing", "flush_logs", "LUA_LOG"]

log = logging.getLogger(__name__)
LUA_LOG = logging.getLogger("wippy_agents.lua.log")

Handler = Callable[[str, list[Any]], Awaitable[Any]]
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
_REQUEST, _REQUEST_LOG, _DONE = b"request", b"request+log", b"done"


class Resume(tuple):
    """An op's answer of several values: the coroutine is resumed with each of them."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Slicing:
    """Per-slice limits of a process: ``budget`` instructions and ``timeout`` seconds between waits."""

    budget: int
    timeout: float
    waits: Callable[[str, list[Any]], bool]


def flush_logs(state: LuaState) -> None:
    """Send records buffered by ``log.*``/``print`` to Python logging, tagged with ``state.log_extra``.

    Each record keeps the time it was written (not the time of the flush).
    """
    records, dropped = state.drain_logs()
    tags = state.log_extra or {}
    for level, message, fields, written in records:
        extra: dict[str, Any] = dict(tags)
        if fields is not None:
            try:
                extra["fields"] = from_lua(fields, where="log fields")
            except WippyError as exc:
                extra["fields"] = f"<{exc}>"
        _emit(_LEVELS.get(level, logging.INFO), message, extra, written)
    if dropped:
        LUA_LOG.warning("%d log records dropped (more than 1000 between two waits)", dropped, extra=dict(tags))


def _emit(level: int, message: str, extra: dict[str, Any], written: float | None) -> None:
    if not LUA_LOG.isEnabledFor(level):
        return
    record = LUA_LOG.makeRecord(LUA_LOG.name, level, "(lua)", 0, message, (), None, extra=extra)
    if written is not None:  # monotonic time of the log.* call -> wall time
        record.created = time.time() - (time.monotonic() - written)
        record.msecs = (record.created - int(record.created)) * 1000
    LUA_LOG.handle(record)


def _arg(value: Any, where: str) -> Any:
    # scalars are most arguments: skip the generic converter for them
    t = type(value)
    if t is bytes:
        return value.decode("utf-8", "replace")
    if value is None or t is int or t is float or t is bool:
        return value
    return from_lua(value, where=where)


def _lua(lua: Any, value: Any, where: str) -> Any:
    t = type(value)
    if t is str:
        return value.encode("utf-8", "surrogateescape")
    if value is None or t is int or t is float or t is bool or t is bytes:
        return value
    return to_lua(lua, value, where=where)


class _Failed:
    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _answer(state: LuaState, op: str, value: Any) -> tuple[Any, ...]:
    """What the coroutine is resumed with for ``value`` (Lua values)."""
    if type(value) is _Failed:
        return None, value.message.encode()
    lua = state.lua
    try:
        if type(value) is Resume:
            return tuple([_lua(lua, v, op) for v in value])
        return _lua(lua, value, op), None
    except LuaMemoryError:
        state.closed = True
        raise LuaLimitExceeded(f"memory limit exceeded ({state.limits.max_memory} bytes)", limit="memory") from None
    except WippyError as exc:  # an answer that is not data (InvalidPayload)
        return None, str(exc).encode()


async def _serve(state: LuaState, handler: Handler, op: str, args: list[Any], who: str,
                 deadline: float | None) -> Any:
    """The handler's answer for ``op``, or ``_Failed(message)``; bounded by ``deadline`` if given."""
    try:
        if deadline is None:
            return await handler(op, args)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            state.closed = True
            raise LuaLimitExceeded(f"{who}: wall-clock limit exceeded ({state.limits.timeout:g} s)", limit="timeout")
        try:
            async with asyncio.timeout(remaining) as scope:
                return await handler(op, args)
        except TimeoutError:
            if scope.expired():
                state.closed = True
                raise LuaLimitExceeded(f"{who}: wall-clock limit exceeded ({state.limits.timeout:g} s) while "
                                       f"waiting in {op}", limit="timeout") from None
            return _Failed(f"{op}: timed out")
    except LuaLimitExceeded:
        raise
    except WippyError as exc:
        return _Failed(str(exc))
    except Exception as exc:  # a bug in a handler must not look like success; Lua still gets an answer
        log.exception("host operation %r failed for %s", op, who)
        return _Failed(f"{op}: internal error ({type(exc).__name__})")


async def run(state: LuaState, thread: Any, send: Sequence[Any], handler: Handler, *, who: str,
              workers: LuaWorkers | None = None, slicing: Slicing | None = None,
              wait_deadline: float | None = None) -> list[Any]:
    """Run ``thread`` to completion; returns its results as Python data (see the module docstring).

    ``send`` are the first resume's Lua values; ``who`` names the code in
    error messages.  Without ``slicing`` the call's limits must be set
    (``state.start``) before, and host waits are bounded by ``wait_deadline``.
    """
    pool = workers or default_workers()
    if state.after_abandon is None:
        state.after_abandon = flush_logs
    step = state.step_slice
    send = tuple(send)
    out: Any = None
    args: Any = None
    value: Any = None
    if slicing is not None:
        budget, timeout, waits = slicing.budget, slicing.timeout, slicing.waits
        new_slice = True
        compacted = state.reused  # a reused state's setup garbage went with its first life
    try:
        while True:
            if slicing is None:
                out = await pool.run(state, step, thread, None, *send)
            elif new_slice:
                out = await pool.run(state, step, thread, budget, *send, timeout=timeout)
            else:
                out = await pool.run(state, step, thread, None, *send)
            tag = out[0]
            if tag is _REQUEST or tag == _REQUEST or tag == _REQUEST_LOG:
                if tag == _REQUEST_LOG:
                    flush_logs(state)
                op = out[1].decode()
                try:
                    args = [_arg(v, op) for v in out[2:]]
                except WippyError as exc:  # an argument that is not data: the op is not run
                    send = (None, str(exc).encode())
                    if slicing is not None:
                        new_slice = False
                    continue
                if slicing is None:
                    value = await _serve(state, handler, op, args, who, wait_deadline)
                else:
                    new_slice = waits(op, args)
                    if new_slice and not compacted:
                        # The first wait of a fresh state: collect what setting it up left
                        # (the bootstrap's main chunk, dropped libraries, module chunks,
                        # fetched bytecode: ~18 KB).  An idle state allocates nothing, so
                        # its collector would never get to it; one full collection here
                        # (~25-35 us) keeps ~20 KB of RSS off each waiting process.
                        compacted = True
                        state.lua.gccollect()
                    value = await _serve(state, handler, op, args, who, None)
                send = _answer(state, op, value)
                continue
            flush_logs(state)
            if tag == _DONE:
                return [from_lua(v, where=f"{who} result") for v in out[1:]]
            message = out[1].decode("utf-8", "replace")
            if slicing is None and not message.startswith(who + ":"):
                message = f"{who}: {message}"
            raise LuaError(message, entry=who)
    finally:
        # also after a limit error or a cancel: keep what the code logged before it stopped
        # (an abandoned state is still inside a worker; the worker flushes it when it leaves)
        if not state.abandoned:
            flush_logs(state)
        # a traceback keeps this frame: it must not keep the Lua runtime alive through these
        thread = send = out = args = value = step = handler = None


async def drive(state: LuaState, thread: Any, args: Sequence[Any], handler: Handler, *, deadline: float,
                who: str, workers: LuaWorkers | None = None) -> list[Any]:
    """Run a call whose limits ``state.start`` set; host waits are bounded by ``deadline``."""
    if state.log_extra is None:
        state.log_extra = {"entry": who}
    return await run(state, thread, args, handler, who=who, workers=workers, wait_deadline=deadline)
