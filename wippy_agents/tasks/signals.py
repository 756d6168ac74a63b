"""Signals to running tasks, persisted so none is lost while a task is down.

A signal is a row ``(id, task_id, topic, payload)`` in the store's
``task_signals`` table (ids increase). Receiving does not change the row: the
receiving task journals the id it took, and its next receive on that topic
asks for the first id after it, so a signal is received exactly once per
task even across crashes and takeovers.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ..errors import UsageError
from ..store.base import Store
from .retry import STORE_RETRY, RetryPolicy, retry_store

__all__ = ["SignalStore", "SignalBox"]


@runtime_checkable
class SignalStore(Protocol):
    """The two store methods signals need (both backends implement them)."""

    async def signal_send(self, task_id: str, topic: str, payload: Any) -> int:
        """Persist a signal; returns its id (increasing)."""

    async def signal_next(self, task_id: str, topic: str, *, after: int) -> tuple[int, Any] | None:
        """The first signal for (task, topic) with id > ``after``, or None."""


class SignalBox:
    """Send and fetch signals through the store, retrying outages."""

    def __init__(self, store: Store, *, poll_interval: float = 0.5, policy: RetryPolicy = STORE_RETRY) -> None:
        self._store = store
        self.poll_interval = poll_interval
        self._policy = policy

    def _signal_store(self) -> SignalStore:
        if not isinstance(self._store, SignalStore):
            raise UsageError(f"the store {type(self._store).__name__} does not support task signals")
        return self._store

    async def send(self, task_id: str, topic: str, payload: Any) -> int:
        store = self._signal_store()
        return await retry_store(
            lambda: store.signal_send(task_id, topic, payload), self._policy, what=f"sending {topic!r} to {task_id!r}"
        )

    async def next(self, task_id: str, topic: str, *, after: int) -> tuple[int, Any] | None:
        store = self._signal_store()
        return await retry_store(
            lambda: store.signal_next(task_id, topic, after=after), self._policy, what=f"reading signals of {task_id!r}"
        )
