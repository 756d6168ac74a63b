"""A process mailbox: a deque plus at most one waiting future, with selective receive.

Not an ``asyncio.Queue``: a queue costs twice the memory per idle process and
cannot hand a message straight to a receiver that waits for a particular
topic. Here ``put`` gives the message directly to the waiting receiver when it
matches (no queueing at all on the ping-pong path) and otherwise appends it;
``get`` scans queued messages in arrival order for the first match, leaving the
others where they are (Erlang's save queue).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Callable

from wippy_agents.errors import ReceiveTimeout

from .messages import MailboxStats, Message

__all__ = ["Mailbox", "Topic", "Match"]

Topic = str | tuple[str, ...] | None
Match = Callable[[Message], bool] | None


_Future = asyncio.Future  # the C class: skips loop.create_future's Python frame on the hot path


def _expire(box: "Mailbox", fut: asyncio.Future) -> None:
    if not fut.done():
        box._waiter = None
        fut.set_result(None)


class Mailbox:
    """Messages for one process (``owner``, a pid), in arrival order.

    ``put`` never blocks. ``get`` waits for the first message whose topic matches
    ``topic`` (a str, a tuple of str, or None for any) and for which ``match``
    (if given) is true; raises ``ReceiveTimeout`` when ``timeout`` seconds pass
    first. Only the owning process calls ``get``; one waiter at a time.
    """

    __slots__ = ("owner", "_queue", "_waiter", "_topic", "_match", "delivered", "received", "max_queued")

    def __init__(self, owner: str = "") -> None:
        self.owner = owner
        self._queue: deque[Message] | None = None  # created on first queued message
        self._waiter: asyncio.Future | None = None
        self._topic: Topic = None
        self._match: Match = None
        self.delivered = 0
        self.received = 0
        self.max_queued = 0

    def __len__(self) -> int:
        return len(self._queue) if self._queue else 0

    def put(self, msg: Message) -> None:
        """Deliver ``msg``: to the waiting receiver if it wants it, else to the queue."""
        self.delivered += 1
        w = self._waiter
        if w is not None and not w.done():
            topic = self._topic
            if topic is None or msg.topic == topic or (type(topic) is tuple and msg.topic in topic):
                match = self._match
                if match is None:
                    self._waiter = None
                    self.received += 1
                    w.set_result(msg)
                    return
                try:
                    wanted = match(msg)
                except Exception as exc:  # the receiver's predicate failed: fail its receive
                    self._waiter = None
                    w.set_exception(exc)
                    wanted = False
                if wanted:
                    self._waiter = None
                    self.received += 1
                    w.set_result(msg)
                    return
        q = self._queue
        if q is None:
            q = self._queue = deque()
        q.append(msg)
        if len(q) > self.max_queued:
            self.max_queued = len(q)

    def get_nowait(self, topic: Topic = None, match: Match = None) -> Message | None:
        """Remove and return the first queued message that matches, or None. Never waits."""
        q = self._queue
        if not q:
            return None
        if topic is None and match is None:
            self.received += 1
            return q.popleft()
        for i, msg in enumerate(q):
            if topic is None or msg.topic == topic or (type(topic) is tuple and msg.topic in topic):
                if match is None or match(msg):
                    del q[i]
                    self.received += 1
                    return msg
        return None

    async def get(self, topic: Topic = None, match: Match = None, timeout: float | None = None) -> Message:
        """Wait for the first matching message.

        Blocks until a match arrives; raises ``ReceiveTimeout`` after ``timeout``
        seconds (0 looks at the queue only). Cancellation propagates (a message
        handed over in the same instant is lost with the dying receiver).
        """
        if self._queue:
            msg = self.get_nowait(topic, match)
            if msg is not None:
                return msg
        loop = asyncio.get_running_loop()
        fut = _Future(loop=loop)
        self._waiter = fut
        self._topic = topic
        self._match = match
        if timeout is None:
            try:
                return await fut
            finally:
                self._waiter = None
        handle = loop.call_at(loop.time() + timeout, _expire, self, fut)
        try:
            msg = await fut
        finally:
            self._waiter = None
            handle.cancel()
        if msg is None:
            raise ReceiveTimeout(f"process {self.owner!r} got no {self.describe(topic)} within {timeout}s",
                                 pid=self.owner, topic=topic, timeout=timeout)
        return msg

    def statistics(self) -> MailboxStats:
        """Counts and the current wait, for ``/ps`` and tests."""
        return MailboxStats(
            queued=len(self),
            delivered=self.delivered,
            received=self.received,
            max_queued=self.max_queued,
            waiting=self._waiter is not None and not self._waiter.done(),
            waiting_topic=self._topic if self._waiter is not None else None,
        )

    def __repr__(self) -> str:
        return f"<Mailbox queued={len(self)} delivered={self.delivered}>"

    @staticmethod
    def describe(topic: Topic) -> str:
        """How a topic filter reads in error messages."""
        if topic is None:
            return "any message"
        if isinstance(topic, tuple):
            return "a message with topic in " + repr(topic)
        return f"a message with topic {topic!r}"
