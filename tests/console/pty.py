"""Driving ``wippy console`` in a pseudo-terminal (pexpect); every expect is bounded."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import pexpect

from .apps import write_app

TIMEOUT = 20  # seconds for any single expectation (App start included)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PROMPT = r"\n\x1b\[\?2004h(?:\x1b\[[0-9;?]*[A-Za-z])*{agent}>"  # prompt_toolkit turns bracketed paste on first
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"  # what a terminal wraps a paste in (bracketed paste)


class ConsoleRun:
    """One ``wippy console`` process; ``expect`` raises with the screen so far when it does not come."""

    def __init__(self, app: Path, store: str, *args: str, home: Path) -> None:
        env = dict(os.environ, COLUMNS="110", LINES="40", NO_COLOR="1", TERM="xterm", HOME=str(home),
                   PYTHONUNBUFFERED="1", PROMPT_TOOLKIT_NO_CPR="1")
        env.pop("CI", None)
        self.child = pexpect.spawn(sys.executable, ["-m", "wippy_agents.cli", "console", "--app", str(app),
                                                    "--store", store, *args],
                                   env=env, encoding="utf-8", timeout=TIMEOUT, dimensions=(40, 110))
        self.seen = ""

    def expect(self, pattern: str, timeout: float = TIMEOUT) -> str:
        try:
            self.child.expect(pattern, timeout=timeout)
        except (pexpect.TIMEOUT, pexpect.EOF) as exc:
            raise AssertionError(f"did not see {pattern!r}; screen so far:\n{plain(self.seen + str(self.child.before))}"
                                 ) from exc
        text = str(self.child.before) + str(self.child.after)
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
