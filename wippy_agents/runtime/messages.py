"""Values that travel between processes: messages, exit signals, monitor notices.

All are frozen keyword-only dataclasses with ``__slots__``; the kernel shares
them between processes instead of copying, which is safe because nothing in
them can be mutated (reasons are strings, copied data or exception values).

Exit reasons follow Erlang/OTP:

* ``"normal"``   — the process finished; linked non-trapping peers ignore it.
* ``"shutdown"`` — an orderly stop requested by a parent or the node.
* ``"kill"``     — only as an *argument* to ``exit(pid, "kill")``: untrappable;
  the victim terminates with ``"killed"``, which is what its links see.
* ``"killed"``   — the reason of a process that was killed.
* ``"noproc"``   — the process did not exist (``monitor``/``link`` of a dead pid).
* anything else — an error: usually the exception that crashed the body,
  or error data (a string or a JSON-like dict) given to ``exit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "NORMAL",
    "SHUTDOWN",
    "KILL",
    "KILLED",
    "NOPROC",
    "Message",
    "Exit",
    "Down",
    "MailboxStats",
    "ProcessInfo",
    "is_abnormal",
]

NORMAL = "normal"
SHUTDOWN = "shutdown"
KILL = "kill"
KILLED = "killed"
NOPROC = "noproc"


def is_abnormal(reason: Any) -> bool:
    """True for reasons a ``transient`` child is restarted after (not normal/shutdown)."""
    return reason != NORMAL and reason != SHUTDOWN


@dataclass(frozen=True, kw_only=True, slots=True)
class Message:
    """One mailbox entry: ``topic`` (a str), copied ``payload``, ``sender`` pid or None.

    ``ref`` is set when the message is a ``call``; answer it with
    ``proc.reply(msg, value)`` (or ``node.reply``). ``None`` for plain sends.
    """

    topic: str
    payload: Any = None
    sender: str | None = None
    ref: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Exit:
    """A trapped exit signal: ``pid`` is where it came from, ``reason`` why."""

    pid: str
    reason: Any


@dataclass(frozen=True, kw_only=True, slots=True)
class Down:
    """A monitor notice: the monitored ``pid`` is gone for ``reason`` (``ref`` from ``monitor``)."""

    ref: str
    pid: str
    reason: Any


@dataclass(frozen=True, kw_only=True, slots=True)
class MailboxStats:
    """What a mailbox holds and has seen; returned by ``Mailbox.statistics()``."""

    queued: int
    delivered: int
    received: int
    max_queued: int
    waiting: bool
    waiting_topic: str | tuple[str, ...] | None


@dataclass(frozen=True, kw_only=True, slots=True)
class ProcessInfo:
    """A snapshot of one live process, as listed by ``Node.processes()`` (for ``/ps``)."""

    pid: str
    name: str | None
    parent: str | None
    body: str
    status: Literal["running", "waiting", "exiting"]
    queued: int
    links: tuple[str, ...]
    monitored_by: int
    trap_exit: bool
