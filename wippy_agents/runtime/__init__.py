"""The actor kernel: Erlang/OTP processes, links, monitors and supervisors on asyncio.

Pure asyncio; imports nothing from the package except ``wippy_agents.errors``.
See ``node.Node`` for the entry point and ``signals`` for the exit rules.
"""

from .actor import Actor
from .mailbox import Mailbox
from .messages import KILL, KILLED, NOPROC, NORMAL, SHUTDOWN, Down, Exit, MailboxStats, Message, ProcessInfo
from .node import Node
from .payload import copy_payload
from .process import Process
from .spec import ChildSpec, SupervisorSpec
from .supervisor import Supervisor

__all__ = [
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
