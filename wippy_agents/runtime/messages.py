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
    "make_message",
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

    ``ref`` is set when the message is a ``call`` (an opaque int token); answer
    it with ``proc.reply(msg, value)`` or ``node.reply(ref, value)``. ``None``
    for plain sends and kernel notices (EXIT, DOWN).
    """

    topic: str
    payload: Any = None
    sender: str | None = None
    ref: int | None = None


_new = object.__new__
_set_topic = Message.topic.__set__  # type: ignore[attr-defined]
_set_payload = Message.payload.__set__  # type: ignore[attr-defined]
_set_sender = Message.sender.__set__  # type: ignore[attr-defined]
_set_ref = Message.ref.__set__  # type: ignore[attr-defined]


def make_message(topic: str, payload: Any, sender: str | None, ref: int | None) -> Message:
    """Build a ``Message`` 5x faster than its frozen-dataclass ``__init__`` (the kernel's hot path).

    Writes the slots directly; the result is an ordinary, equal, immutable ``Message``.
    """
    m = _new(Message)
    _set_topic(m, topic)
    _set_payload(m, payload)
    _set_sender(m, sender)
    _set_ref(m, ref)
    return m


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
