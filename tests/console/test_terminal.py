"""Terminal plumbing: the App's loop thread and the console's log routing."""

from __future__ import annotations

import asyncio
import io
import logging
import threading

import pytest
from rich.console import Console

from wippy_agents.console.terminal import LoopThread, route_logs, unroute_logs
from wippy_agents.errors import UsageError


def test_the_loop_thread_runs_coroutines_off_the_calling_thread_and_raises_their_errors():
    loop = LoopThread()
    try:
        async def where():
            await asyncio.sleep(0)
            return threading.current_thread().name

        assert loop.call(where()) == "wippy-app-loop"

        async def fail():
            raise UsageError("bad input")

        with pytest.raises(UsageError, match="bad input"):
            loop.call(fail())
    finally:
        loop.close()
    assert loop.loop.is_closed()
    loop.close()  # idempotent


def test_logs_go_to_the_file_and_only_warnings_to_the_screen(tmp_path):
    screen = io.StringIO()
    handlers = route_logs(Console(file=screen, width=100, color_system=None), tmp_path / ".wippy" / "console.log")
    logger = logging.getLogger("wippy_agents.some.module")
    old_level = logging.getLogger("wippy_agents").level
    logging.getLogger("wippy_agents").setLevel(logging.INFO)
    try:
        logger.info("registry version 3 applied")
        logger.warning("the watcher skipped a bad file")
    finally:
        unroute_logs(handlers)
        logging.getLogger("wippy_agents").setLevel(old_level)
    shown = screen.getvalue()
    assert "warning: the watcher skipped a bad file" in shown and "registry version 3" not in shown
    written = (tmp_path / ".wippy" / "console.log").read_text()
    assert "registry version 3 applied" in written and "the watcher skipped a bad file" in written
