"""Helpers for the Lua process tests: a node, a Lua host on an in-memory registry, a manager."""

from __future__ import annotations

import asyncio
from typing import Any

from wippy_agents.lua import LuaHost, Services, UNGUARDED
from wippy_agents.lua.processes import LuaProcesses
from wippy_agents.runtime import Node

HOST = "app:processes"


def proc_entry(id: str, source: str, *, modules=(), method: str = "handler", kind: str = "process.lua",
               limits: dict | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"source": source, "method": method, "modules": list(modules)}
    if limits:
        data["limits"] = limits
    return {"id": id, "kind": kind, "meta": {}, "data": data}


def body(code: str) -> str:
    """A process.lua source whose handler body is ``code`` (its arguments are ``...``)."""
    return f"return {{handler = function(...)\n{code}\nend}}"


class Entries:
    """A dict-backed registry seam (get/find) the Lua host reads entries from."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}

    def add(self, entry: dict[str, Any]) -> None:
        self.entries[entry["id"]] = entry

    async def get_entry(self, entry_id: str, *, actor: Any = None) -> Any:
        return self.entries.get(entry_id)

    def services(self) -> Services:
        return Services(get_entry=self.get_entry, guard=UNGUARDED)  # the Lua layer alone, without security


class Rig:
    """A running node + manager with one host, and a Python collector process for reports."""

    def __init__(self, node: Node, procs: LuaProcesses, entries: Entries) -> None:
        self.node, self.procs, self.entries = node, procs, entries
        self.reports: asyncio.Queue = asyncio.Queue()
        self.exits: dict[str, Any] = {}  # pid -> exit reason, for every process of the node
        node.on_exit(self.exits.__setitem__)
        self.collector = node.spawn(self._collect, name="collector")

    async def _collect(self, proc) -> None:
        while True:
            msg = await proc.receive()
            self.reports.put_nowait((msg.topic, msg.payload, msg.sender))

    def add(self, id: str, code: str, **kw: Any) -> str:
        self.entries.add(proc_entry(id, body(code), **kw))
        return id

    async def report(self, timeout: float = 10.0) -> tuple[str, Any, Any]:
        return await asyncio.wait_for(self.reports.get(), timeout)

    def queued_topics(self) -> list[str]:
        """Topics of the reports received so far and not yet taken (drains the queue)."""
        out = []
        while not self.reports.empty():
            out.append(self.reports.get_nowait()[0])
        return out

    async def spawn(self, id: str, *args: Any) -> str:
        return await self.procs.spawn(id, HOST, *args)


async def wait_until(pred, timeout: float = 5.0, interval: float = 0.005) -> None:
    """Poll ``pred()`` until true, failing the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def make_rig(restart: str | None = None) -> Rig:
    """A rig whose host ``app:processes`` has the default ``restart: temporary`` or the given one."""
    node = Node("t")
    entries = Entries()
    host = LuaHost(services=entries.services(), node=node)
    procs = LuaProcesses(node, host)
    procs.start_host(HOST, {"restart": restart} if restart else None)
    return Rig(node, procs, entries)


async def close_rig(rig: Rig) -> None:
    await rig.procs.close()
    await rig.node.stop()
