"""The coroutine<->asyncio bridge: run a Lua thread, serving its host requests.

Lua code that must wait (``time.sleep``, ``funcs.call``, later ``receive``)
is a small Lua wrapper that ``coroutine.yield``s a request ``(op, args)`` to
this driver (Lua called from a Python callback cannot yield, so no Python
callable is ever called from Lua).  The driver awaits the async handler for
``op`` and resumes the thread with ``value, nil`` or, when the handler
raised a ``WippyError``, with ``nil, message`` (SPEC §5's error style).
Each waiting thread is just a suspended coroutine plus one awaiting Python
frame, so thousands can wait on one loop.

``drive`` blocks while Lua computes (bounded by the state's hook) and may be
cancelled while it awaits a handler; it raises ``LuaError`` for a Lua error,
``LuaLimitExceeded`` when a limit tripped (also when a wait outlives the
wall-clock deadline).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Sequence

from lupa.lua54 import LuaMemoryError

from wippy_agents.errors import InvalidPayload, LuaError, LuaLimitExceeded, WippyError
from wippy_agents.lua.sandbox import LuaState
from wippy_agents.lua.value import from_lua, to_lua

__all__ = ["drive", "Handler", "LUA_LOG"]

log = logging.getLogger(__name__)
LUA_LOG = logging.getLogger("wippy_agents.lua.log")

Handler = Callable[[str, list[Any]], Awaitable[Any]]
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def flush_logs(state: LuaState, who: str) -> None:
    """Send records buffered by ``log.*``/``print`` to Python logging, tagged with ``who``."""
    records, dropped = state.drain_logs()
    for level, message, fields in records:
        extra: dict[str, Any] = {"entry": who}
        if fields is not None:
            try:
                extra["fields"] = from_lua(fields, where="log fields")
            except WippyError as exc:
                extra["fields"] = f"<{exc}>"
        LUA_LOG.log(_LEVELS.get(level, logging.INFO), message, extra=extra)
    if dropped:
        LUA_LOG.warning("%d log records dropped (more than 1000 between two waits)", dropped, extra={"entry": who})


def _resume_values(state: LuaState, value: Any = None, error: str | None = None) -> tuple[Any, Any]:
    try:
        return to_lua(state.lua, value, where="host answer"), None if error is None else error.encode()
    except LuaMemoryError:
        state.closed = True
        raise LuaLimitExceeded(f"memory limit exceeded ({state.limits.max_memory} bytes)", limit="memory") from None
    except InvalidPayload as exc:
        return None, str(exc).encode()


async def drive(
    state: LuaState,
    thread: Any,
    args: Sequence[Any],
    handler: Handler,
    *,
    deadline: float,
    who: str,
) -> list[Any]:
    """Run ``thread`` to completion; returns its results as Python data.

    ``args`` are Lua values already (use ``to_lua``); ``who`` tags logs and
    error messages.  Every wait is bounded by ``deadline`` (``time.monotonic``).
    """
    send: tuple[Any, ...] = tuple(args)
    try:
        while True:
            out = state.step(thread, *send)
            flush_logs(state, who)
            tag = out[0]
            if tag == b"done":
                results = out[1]
                n = results[b"n"]
                return [from_lua(results[i], where=f"{who} result") for i in range(2, n + 1)]
            if tag == b"error":
                message = out[1].decode("utf-8", "replace")
                if not message.startswith(who + ":"):
                    message = f"{who}: {message}"
                raise LuaError(message, entry=who)
            op = out[1].decode("utf-8", "replace")
            send = await _serve(state, op, out[2], handler, deadline, who)
    finally:
        # a cancelled or failed run leaves the coroutine suspended: nothing to
        # clean up in Lua, but record what it logged before it stopped.
        if not state.closed:
            flush_logs(state, who)


async def _serve(state: LuaState, op: str, raw: Any, handler: Handler, deadline: float, who: str) -> tuple[Any, Any]:
    try:
        n = raw[b"n"]
        args = [from_lua(raw[i], where=f"{op} argument {i}") for i in range(1, n + 1)]
    except WippyError as exc:
        return _resume_values(state, None, str(exc))
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        state.closed = True
        raise LuaLimitExceeded(f"{who}: wall-clock limit exceeded ({state.limits.timeout:g} s)", limit="timeout")
    try:
        async with asyncio.timeout(remaining) as scope:
            value = await handler(op, args)
    except TimeoutError:
        if scope.expired():
            state.closed = True
            raise LuaLimitExceeded(
                f"{who}: wall-clock limit exceeded ({state.limits.timeout:g} s) while waiting in {op}", limit="timeout"
            ) from None
        return _resume_values(state, None, f"{op}: timed out")
    except WippyError as exc:
        return _resume_values(state, None, str(exc))
    except Exception as exc:  # a bug in a handler must not look like success; Lua still gets an answer
        log.exception("host operation %r failed for %s", op, who)
        return _resume_values(state, None, f"{op}: internal error ({type(exc).__name__})")
    return _resume_values(state, value)
