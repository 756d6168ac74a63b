"""Who this process is on the store, and whether another node's process still lives.

A node id records its host, pid and the process's start token (on Linux the
boot id plus the start time in clock ticks from ``/proc/<pid>/stat``), so a
node on the same host whose process is gone is known dead at once — and a pid
the kernel handed to some other process since is not mistaken for it. Where
``/proc`` is missing the token is ``""`` and only ``kill(pid, 0)`` is asked:
a reused pid then looks alive, which errs on the safe side (the task waits
for its lease to expire instead of being taken from a live owner).

>>> me = this_process("worker-1")
>>> is_alive(me.pid, me.started)
True
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NodeIdentity", "this_process", "is_alive", "start_token", "host_name"]


@dataclass(frozen=True, kw_only=True)
class NodeIdentity:
    """This process as a node: ``stable`` when the name was given (``--node``/``node:``)."""

    name: str
    host: str
    pid: int
    started: str
    stable: bool = False


@functools.cache
def host_name() -> str:
    """This host's name; ``WIPPY_HOST`` overrides it (nodes of one machine acting as
    several hosts, as in tests and benchmarks of lease expiry)."""
    return os.environ.get("WIPPY_HOST") or socket.gethostname() or "localhost"


@functools.cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def start_token(pid: int) -> str:
    """``"<boot id>:<start ticks>"`` of a live process, ``""`` when it is gone or unknowable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # Field 2 (the command) may hold spaces and parentheses: count from the last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    return f"{_boot_id()}:{fields[19]}" if len(fields) > 19 else ""


def is_alive(pid: int, started: str) -> bool:
    """Whether the process ``pid`` that started as ``started`` still runs (on this host)."""
    if started:
        return start_token(pid) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def this_process(name: str | None = None, *, stable: bool | None = None) -> NodeIdentity:
    """This process's identity; without ``name`` a unique one, ``<host>-<pid>``
    (``stable`` defaults to whether a name was given)."""
    pid = os.getpid()
    host = host_name()
    return NodeIdentity(name=name or f"{host}-{pid}", host=host, pid=pid, started=start_token(pid),
                        stable=bool(name) if stable is None else stable)
