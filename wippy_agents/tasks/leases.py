"""Leases: the heartbeat that keeps our tasks, the claimer that takes expired ones.

A node owns a running task while its lease is fresh. ``LeaseKeeper`` runs two
loops inside the engine's lifetime:

* heartbeat (every ``heartbeat_seconds``): extend the leases of the tasks
  running here; a task whose lease we no longer hold was taken over (or
  cancelled elsewhere) and its local run is stopped at once;
* claimer (every ``claim_interval``): atomically claim tasks whose lease
  expired (a dead node's) and resume them here.

Both loops survive store outages (they log and try again next tick).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Awaitable, Callable

from ..errors import StoreError
from ..store.base import Store

__all__ = ["LeaseKeeper"]

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Owns the heartbeat and claimer loops; ``start()`` / ``await stop()``.

    ``running_ids()`` lists the tasks running here; ``on_lost(ids)`` is
    awaited with the ids whose lease is gone; ``claim()`` claims and launches
    expired tasks.
    """

    def __init__(
        self,
        store: Store,
        *,
        node_name: str,
        lease_seconds: float,
        heartbeat_seconds: float,
        claim_interval: float | None,
        running_ids: Callable[[], list[str]],
        on_lost: Callable[[list[str]], Awaitable[None]],
        claim: Callable[[], Awaitable[object]],
    ) -> None:
        self._store = store
        self._node = node_name
        self._lease = lease_seconds
        self._beat = heartbeat_seconds
        self._claim_interval = claim_interval
        self._running_ids = running_ids
        self._on_lost = on_lost
        self._claim = claim
        self._loops: list[asyncio.Task] = []

    def start(self) -> None:
        if self._loops:
            return
        self._loops.append(asyncio.create_task(self._every(self._beat, self.heartbeat), name=f"heartbeat:{self._node}"))
        if self._claim_interval:
            self._loops.append(
                asyncio.create_task(self._every(self._claim_interval, self._claim), name=f"claimer:{self._node}")
            )

    async def stop(self) -> None:
        """Cancel both loops and wait for them to end."""
        loops, self._loops = self._loops, []
        for loop in loops:
            loop.cancel()
        for loop in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop

    async def heartbeat(self) -> list[str]:
        """Extend our leases once; stops the runs whose lease is gone. Returns those ids."""
        ids = self._running_ids()
        if not ids:
            return []
        held = set(await self._store.task_heartbeat(self._node, ids, self._lease))
        # A run that ended while the heartbeat was in flight is no loss.
        lost = [task_id for task_id in ids if task_id not in held and task_id in self._running_ids()]
        if lost:
            await self._on_lost(lost)
        return lost

    async def _every(self, interval: float, action: Callable[[], Awaitable[object]]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await action()
            except StoreError as exc:
                log.warning("node %r: %s failed, will try again: %s", self._node, action.__name__, exc)
            except Exception:  # a bug in one tick must not end the loop that keeps leases alive
                log.exception("node %r: %s failed", self._node, action.__name__)
