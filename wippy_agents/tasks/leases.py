"""Leases: the heartbeat that keeps our tasks, the claimer that takes free ones.

A node owns a running task while its lease is fresh. A ``Lease`` is our claim
of one task: the epoch the store gave that claim (every journal write, status
change and heartbeat names it, so a claim that was taken over is refused in
the same statement) and until when we know the lease holds. ``LeaseKeeper``
runs two loops inside the engine's lifetime:

* heartbeat (every ``heartbeat_seconds``): extend the leases of the tasks
  running here, fenced on their epochs, and mark this node alive; a task
  whose lease we no longer hold was taken over (or cancelled elsewhere) and
  its local run is stopped at once;
* claimer (every ``claim_interval``, and at once when ``wake()`` is called):
  atomically claim queued tasks and tasks whose lease expired (a dead
  node's) and run them here.

A late heartbeat is harmless: before a step's effect runs, a lease that is
past its known end is checked with the store first (``Lease.ensure``).
Both loops survive store outages (they log and try again next tick).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Awaitable, Callable

from ..errors import LeaseLost, StoreError
from ..store.base import Store

__all__ = ["Lease", "LeaseKeeper"]

log = logging.getLogger(__name__)


class Lease:
    """Our claim of one task: ``node``, ``epoch`` and when it is known to end (monotonic)."""

    def __init__(self, store: Store, task_id: str, node: str, epoch: int, seconds: float) -> None:
        self._store = store
        self.task_id = task_id
        self.node = node
        self.epoch = epoch
        self.seconds = seconds
        self.valid_until = time.monotonic() + seconds
        self.lost = False

    def renewed(self, sent_at: float) -> None:
        """The store extended it by a heartbeat sent at ``sent_at`` (monotonic)."""
        self.valid_until = max(self.valid_until, sent_at + self.seconds)

    def lose(self) -> None:
        self.lost = True

    async def ensure(self) -> None:
        """Return while the lease is ours; raise ``LeaseLost`` once it is not.

        No round trip while the last heartbeat is fresh; past the lease's
        known end (a paused process, a starved loop) one fenced heartbeat
        decides. Raises ``StoreError`` when the store cannot say.
        """
        if self.lost:
            raise self._error()
        if time.monotonic() < self.valid_until:
            return
        sent = time.monotonic()
        held = await self._store.task_heartbeat(self.node, [self.task_id], self.seconds,
                                                epochs={self.task_id: self.epoch})
        if not held:
            self.lose()
            raise self._error()
        self.renewed(sent)

    def _error(self) -> LeaseLost:
        return LeaseLost(f"task {self.task_id!r}: node {self.node!r} lost its lease (epoch {self.epoch}); "
                         "another node runs it now", task_id=self.task_id, node=self.node)


class LeaseKeeper:
    """Owns the heartbeat and claimer loops; ``start()`` / ``await stop()``.

    ``leases()`` gives the leases of the tasks running here; ``on_lost(ids)``
    is awaited with the ids whose lease is gone; ``claim()`` claims and
    launches free tasks; ``beat_node()`` marks the node alive.
    """

    def __init__(
        self,
        store: Store,
        *,
        node_name: str,
        lease_seconds: float,
        heartbeat_seconds: float,
        claim_interval: float | None,
        leases: Callable[[], dict[str, Lease]],
        on_lost: Callable[[list[str]], Awaitable[None]],
        claim: Callable[[], Awaitable[object]],
        beat_node: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._store = store
        self._node = node_name
        self._lease = lease_seconds
        self._beat = heartbeat_seconds
        self._claim_interval = claim_interval
        self._leases = leases
        self._on_lost = on_lost
        self._claim = claim
        self._beat_node = beat_node
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task] = []

    def start(self) -> None:
        if self._loops:
            return
        self._loops.append(asyncio.create_task(self._every(self._beat, self.heartbeat), name=f"heartbeat:{self._node}"))
        if self._claim_interval:
            self._loops.append(asyncio.create_task(
                self._every(self._claim_interval, self._claim, wake=self._wake), name=f"claimer:{self._node}"))

    def wake(self) -> None:
        """Claim now rather than at the next tick (a run ended: room for another)."""
        self._wake.set()

    async def stop(self) -> None:
        """Cancel both loops and wait for them to end."""
        loops, self._loops = self._loops, []
        for loop in loops:
            loop.cancel()
        for loop in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop

    async def heartbeat(self) -> list[str]:
        """Extend our leases once (fenced on their epochs); stops the runs whose lease
        is gone. Returns those ids."""
        if self._beat_node is not None:
            await self._beat_node()
        leases = self._leases()
        if not leases:
            return []
        sent = time.monotonic()
        held = set(await self._store.task_heartbeat(
            self._node, list(leases), self._lease, epochs={i: lease.epoch for i, lease in leases.items()}))
        for task_id in held:
            leases[task_id].renewed(sent)
        # A run that ended while the heartbeat was in flight is no loss.
        now = self._leases()
        lost = [i for i in leases if i not in held and now.get(i) is leases[i]]
        for task_id in lost:
            leases[task_id].lose()
        if lost:
            await self._on_lost(lost)
        return lost

    async def _every(self, interval: float, action: Callable[[], Awaitable[object]],
                     wake: asyncio.Event | None = None) -> None:
        while True:
            if wake is None:
                await asyncio.sleep(interval)
            else:
                # Not ``wait_for``: on 3.11 it can swallow a cancel that lands as the wait
                # completes (a run ending sets ``wake`` just as ``stop`` cancels), and then
                # this loop would never end.
                timer = asyncio.get_running_loop().call_later(interval, wake.set)
                try:
                    await wake.wait()
                finally:
                    timer.cancel()
                wake.clear()
            try:
                await action()
            except StoreError as exc:
                log.warning("node %r: %s failed, will try again: %s", self._node, action.__name__, exc)
            except Exception:  # a bug in one tick must not end the loop that keeps leases alive
                log.exception("node %r: %s failed", self._node, action.__name__)
