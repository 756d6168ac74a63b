"""Which event loop a command runs on: the stock asyncio loop, or uvloop when asked for.

``wippy run --loop asyncio|uvloop|auto``: ``asyncio`` (the default), ``uvloop``
(an error in one line when it is not installed: ``pip install uvloop``, or the
``bench`` extra), ``auto`` (uvloop when it is installed, else asyncio). The
``WIPPY_LOOP`` environment variable gives the default. Measured in
``bench/durable.py --json`` (journal) and ``bench/actors.py`` (messaging).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Callable, Coroutine

from ..errors import ConfigError

__all__ = ["LOOPS", "loop_factory", "run_on"]

LOOPS = ("asyncio", "uvloop", "auto")


def loop_factory(name: str | None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory for ``name`` (None: the stock asyncio loop)."""
    name = (name or os.environ.get("WIPPY_LOOP") or "asyncio").lower()
    if name not in LOOPS:
        raise ConfigError(f"event loop {name!r}: use one of {', '.join(LOOPS)}")
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if name == "auto":
            return None
        raise ConfigError("event loop 'uvloop' is not installed: pip install uvloop (or the bench extra),"
                          " or run with --loop asyncio") from None
    return uvloop.new_event_loop


def run_on(name: str | None, coro: Coroutine[Any, Any, Any]) -> Any:
    """``asyncio.run(coro)`` on the loop ``name`` picks."""
    try:
        factory = loop_factory(name)
    except BaseException:
        coro.close()
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)
