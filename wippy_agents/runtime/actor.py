"""Class-based processes with hooks, in the style of gen_server / pykka.

Subclass ``Actor`` and spawn the class (a fresh instance per start, so a
supervisor restart never sees stale state)::

    class Counter(Actor):
        async def on_start(self, start=0):
            self.n = start

        async def handle(self, msg):
            if msg.topic == "add":
                self.n += msg.payload
            return self.n          # the reply, when msg came from call()

    pid = await node.start(Counter, 10)
    assert await node.call(pid, "add", 5) == 15
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, ClassVar

from wippy_agents.errors import ProcessExit

from .messages import KILLED, NORMAL, Exit, Message

if TYPE_CHECKING:
    from .process import Process

__all__ = ["Actor", "run_actor"]

logger = logging.getLogger(__name__)


class _NoReply:
    __slots__ = ()

    def __repr__(self) -> str:
        return "Actor.NOREPLY"


class Actor:
    """Base class for a process written as hooks.

    * ``on_start(*args)`` runs first; the process counts as started when it
      returns (an exception there is a ``StartError`` for the starter).
    * ``handle(msg)`` runs for every message, one at a time. For a ``call``
      its return value is the reply, unless it returns ``Actor.NOREPLY``
      (reply later with ``self.proc.reply(msg, value)``) or already replied.
    * ``on_stop(reason)`` runs when the process ends for any reason except
      ``killed`` — including a crash in ``handle`` or an exit signal.
    * With ``trap_exit``, an ``EXIT`` from the parent (or from ``node.pid``,
      the node shutting down) stops the actor with that reason (as gen_server
      does); other ``EXIT``/``DOWN`` go to ``handle``.

    End the actor from a hook with ``self.proc.stop(reason)``.
    """

    NOREPLY: ClassVar[Any] = _NoReply()
    proc: Process

    async def on_start(self, *args: Any) -> None:
        """Initialise state from the spawn arguments."""

    async def handle(self, msg: Message) -> Any:
        """Handle one message; the default logs and ignores it."""
        logger.warning("actor %s (%s) ignored unexpected message %r", self.proc.pid, type(self).__qualname__,
                       msg.topic)
        return None

    async def on_stop(self, reason: Any) -> None:
        """Release resources; ``reason`` is why the process is ending."""


async def run_actor(cls: type[Actor], proc: Process, args: tuple) -> None:
    """The process body behind an ``Actor`` subclass."""
    actor = cls()
    actor.proc = proc
    await actor.on_start(*args)
    proc.init_ack()
    try:
        while True:
            msg = await proc.receive()
            payload = msg.payload
            if (msg.topic == "EXIT" and proc.trap_exit and type(payload) is Exit
                    and (payload.pid == proc.parent or payload.pid == proc.node.pid)):
                reason = payload.reason
                break
            result = await actor.handle(msg)
            if msg.ref is not None and result is not Actor.NOREPLY:
                proc.reply(msg, result)
    except asyncio.CancelledError:
        reason = proc._reason if proc._reason is not None else KILLED
        if reason != KILLED:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # the cancel was our exit signal; let on_stop await normally
            await _on_stop(actor, reason)
        raise
    except ProcessExit as exc:
        await _on_stop(actor, exc.details.get("reason", NORMAL))
        raise
    except Exception as exc:
        await _on_stop(actor, exc)
        raise
    await _on_stop(actor, reason)
    if reason != NORMAL:
        proc.stop(reason)


async def _on_stop(actor: Actor, reason: Any) -> None:
    try:
        await actor.on_stop(reason)
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("actor %s: on_stop failed (exit reason %r)", actor.proc.pid, reason)
