"""The actor kernel: Erlang/OTP processes, links, monitors and supervisors on asyncio.

Pure asyncio; imports nothing from the package except ``wippy_agents.errors``.

>>> async def echo(proc):
...     while True:
...         msg = await proc.receive()          # selective: receive("topic", timeout=1.0)
...         proc.reply(msg, msg.payload)
>>> async with Node("local") as node:
...     pid = node.spawn(echo, name="echo")
...     assert await node.call("echo", "ping", {"n": 1}, timeout=5.0) == {"n": 1}

Where things are: ``node`` (pids, names, send/call, timers, stop), ``process``
(the handle a body gets), ``mailbox`` (selective receive), ``signals`` (links,
monitors and the OTP exit-signal rules), ``actor`` (class-based processes),
``spec`` + ``supervisor`` (supervision trees), ``payload`` (copy-as-data),
``timers`` (the call-deadline wheel).
"""

from .actor import Actor
from .clock import SYSTEM_CLOCK, Clock, SystemClock
from .mailbox import Mailbox
from .messages import KILL, KILLED, NOPROC, NORMAL, SHUTDOWN, Down, Exit, MailboxStats, Message, ProcessInfo
from .node import Node
from .payload import copy_payload
from .process import Process
from .spec import ChildSpec, SupervisorSpec
from .supervisor import Supervisor

__all__ = [
    "SYSTEM_CLOCK",
    "Clock",
    "SystemClock",
    "Node",
    "Process",
    "Actor",
    "Supervisor",
    "SupervisorSpec",
    "ChildSpec",
    "Message",
    "Exit",
    "Down",
    "Mailbox",
    "MailboxStats",
    "ProcessInfo",
    "copy_payload",
    "NORMAL",
    "SHUTDOWN",
    "KILL",
    "KILLED",
    "NOPROC",
]
