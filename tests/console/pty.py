"""Driving ``wippy console`` in a pseudo-terminal (pexpect); every expect is bounded."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pexpect

from .apps import write_app

TIMEOUT = 20  # seconds for any single expectation (App start included)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PROMPT = r"\x1b\[\?2004h(?:\x1b\[[0-9;?]*[A-Za-z])*{agent}>"  # prompt_toolkit turns bracketed paste on first
CPR = re.escape("\x1b[6n")  # "where is the cursor?"
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"  # what a terminal wraps a paste in (bracketed paste)


class ConsoleRun:
    """One ``wippy console`` process; ``expect`` raises with the screen so far when it does not come."""

    def __init__(self, app: Path, store: str, *args: str, home: Path) -> None:
        env = dict(os.environ, COLUMNS="110", LINES="40", NO_COLOR="1", TERM="xterm", HOME=str(home),
                   PYTHONUNBUFFERED="1")
        env.pop("CI", None)
        self.child = pexpect.spawn(sys.executable, ["-m", "wippy_agents.cli", "console", "--app", str(app),
                                                    "--store", store, *args],
                                   env=env, encoding="utf-8", timeout=TIMEOUT, dimensions=(40, 110))
        self.seen = ""

    def expect(self, pattern: str, timeout: float = TIMEOUT) -> str:
        """Wait for ``pattern``, answering the line editor's cursor-position requests on the way (a real
        terminal does; prompt_toolkit draws its bottom toolbar only once it knows where the cursor is)."""
        text = ""
        deadline = time.monotonic() + timeout
        while True:
            try:
                hit = self.child.expect([pattern, CPR], timeout=max(0.0, deadline - time.monotonic()))
            except (pexpect.TIMEOUT, pexpect.EOF) as exc:
                raise AssertionError(f"did not see {pattern!r}; screen so far:\n"
                                     f"{plain(self.seen + text + str(self.child.before))}") from exc
            if hit == 0:
                text += str(self.child.before) + str(self.child.after)
                break
            # drop the request from the stream and look again: it may have come in the middle of the pattern
            rest = str(self.child.before) + self.child.buffer
            self.child.buffer = rest
            self.child._before = self.child.buffer_type()  # pexpect's "before" is kept apart from the buffer
            self.child._before.write(rest)
            self.child.send("\x1b[20;1R")
        self.seen += text
        return plain(text)

    def prompt(self, agent: str = "assistant") -> str:
        """The line editor's prompt at the start of a line (prompt_toolkit draws it after some escapes)."""
        return self.expect(PROMPT.format(agent=re.escape(agent)))

    def send(self, line: str) -> None:
        self.child.sendline(line)

    def quit(self) -> str:
        """Ctrl-D; returns the session id printed on the way out."""
        self.child.sendeof()
        out = self.expect(r"--resume (\w+)")
        self.child.expect(pexpect.EOF, timeout=TIMEOUT)
        self.child.close()
        assert self.child.exitstatus == 0, plain(self.seen)
        return re.search(r"--resume (\w+)", out).group(1)

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


def plain(text: str) -> str:
    return ANSI.sub("", text)


def make_app(tmp_path: Path, script: list[dict[str, Any]], **kw: Any) -> tuple[Path, str]:
    path = write_app(tmp_path / "app", script, **kw)
    return path, f"sqlite:///{tmp_path / 'state.db'}"
