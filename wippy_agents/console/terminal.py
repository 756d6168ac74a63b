"""Terminal plumbing for the console: the App's loop thread, line history, log routing, session locks.

``LoopThread`` runs the App's asyncio loop on a thread of its own so the main
thread keeps the terminal (readline, Ctrl-C, approval questions). The rest
are small helpers with one job each.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Coroutine

from rich.console import Console
from rich.text import Text

from ..errors import UsageError

try:  # line editing and history; absent on some platforms, where input() still works
    import readline
except ImportError:  # pragma: no cover
    readline = None  # type: ignore[assignment]

__all__ = ["LoopThread", "lock_session", "history_file", "load_history", "append_history", "forget_last_line",
           "route_logs", "unroute_logs"]

log = logging.getLogger(__name__)

HISTORY_LENGTH = 1000


class LoopThread:
    """An asyncio loop on a thread of its own; ``call`` runs a coroutine there and waits for it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="wippy-app-loop", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, Any]) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Block until ``coro`` is done; its error is raised here. Ctrl-C interrupts the wait, not the work."""
        return self.submit(coro).result()

    def close(self) -> None:
        if self.loop.is_closed():
            return
        try:
            self.call(self.loop.shutdown_asyncgens())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            if not self._thread.is_alive():
                self.loop.close()


class _ConsoleLogHandler(logging.Handler):
    """Warnings and errors printed through the rich console, so they land above a live turn, not inside it."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.WARNING)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            style = "red" if record.levelno >= logging.ERROR else "yellow"
            self.console.print(Text(f"{record.levelname.lower()}: {record.getMessage()}", style=style))
        except Exception:  # noqa: BLE001 - logging must never break the console
            self.handleError(record)


def route_logs(console: Console, path: Path) -> list[logging.Handler]:
    """The node's log lines go to ``.wippy/console.log`` (at the chosen level); warnings also to the screen."""
    logger = logging.getLogger("wippy_agents")
    for handler in list(logger.handlers):
        if getattr(handler, "_wippy", False):  # the stderr handler of `wippy` (cli.main)
            logger.removeHandler(handler)
    added: list[logging.Handler] = [_ConsoleLogHandler(console)]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(path, encoding="utf-8")
        file.setFormatter(logging.Formatter("%(asctime)s %(levelname)-5s %(name)s %(message)s"))
        added.append(file)
    except OSError as exc:
        console.print(f"cannot write the log file {path}: {exc}", style="yellow")
    for handler in added:
        logger.addHandler(handler)
    return added


def unroute_logs(handlers: list[logging.Handler]) -> None:
    logger = logging.getLogger("wippy_agents")
    for handler in handlers:
        logger.removeHandler(handler)
        handler.close()


def lock_session(root: Path, session_id: str) -> Callable[[], None]:
    """Mark ``session_id`` as open in this process (``.wippy/sessions/ID.pid``); returns the release.

    Raises ``UsageError`` while another live console on this machine has it open: two consoles on one
    node name would both run it. (Other machines have other node names; the task's lease guards those.)
    """
    path = root / ".wippy" / "sessions" / f"{session_id}.pid"
    try:
        other = int(path.read_text().strip())
    except (OSError, ValueError):
        other = None
    if other is not None and other != os.getpid() and _alive(other):
        raise UsageError(f"console session {session_id!r} is open in another console (process {other}); "
                         "leave that one first")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(os.getpid()))

    def release() -> None:
        try:
            if path.read_text().strip() == str(os.getpid()):
                path.unlink()
        except OSError:
            pass

    return release


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def history_file(app: Any) -> Path:
    return Path(app.settings.root) / ".wippy" / "console_history"


def load_history(path: Path) -> None:
    if readline is None:
        return
    readline.set_history_length(HISTORY_LENGTH)
    try:
        if path.exists():
            readline.read_history_file(str(path))
    except OSError as exc:
        log.warning("cannot read the console history %s: %s", path, exc)


def append_history(path: Path) -> None:
    """Called after each line, so a crash keeps the history too."""
    if readline is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.touch()
        readline.append_history_file(1, str(path))
    except OSError as exc:
        log.warning("cannot write the console history %s: %s", path, exc)


def forget_last_line() -> None:
    """Drop the newest in-memory history line (an approval answer is not worth recalling)."""
    if readline is not None:
        n = readline.get_current_history_length()
        if n:
            readline.remove_history_item(n - 1)

