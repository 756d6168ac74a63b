"""Shared pieces of the workflow crash, failover and durable-sleep tests: real node processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from wippy_agents.store import open_store
from wippy_agents.store.base import TaskRecord

NODE = str(Path(__file__).with_name("wf_node.py"))
READY = b"running:"  # the node's log line once recovery ran and services started


def write_app(root: Path, store: str, flows: dict[str, str], *, lease: float, beat: float, claim: float) -> str:
    """An app dir with the given workflow.lua sources (namespace app.flows) and short leases."""
    app = root / "app"
    (app / "src").mkdir(parents=True, exist_ok=True)
    (app / "wippy.yaml").write_text(yaml.safe_dump({
        "sources": ["src"], "store": store,
        "tasks": {"lease_seconds": lease, "heartbeat_seconds": beat, "claim_interval": claim},
    }))
    entries = [{"name": name, "kind": "workflow.lua", "source": src, "modules": ["funcs", "time", "log"]}
               for name, src in flows.items()]
    (app / "src" / "flows.yaml").write_text(yaml.safe_dump({"namespace": "app.flows", "entries": entries}))
    return str(app)


class NodeProc:
    """One ``wippy`` process (through wf_node.py); stderr is drained so it never blocks."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[bytes] = []
        self.ready = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, *args: str, env: dict[str, str]) -> "NodeProc":
        proc = await asyncio.create_subprocess_exec(
            sys.executable, NODE, *args, env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.lines.append(line)
            if READY in line:
                self.ready.set()

    async def wait_ready(self, timeout: float = 30.0) -> bool:
        """True once the node logged that it runs; False if it died first (a planned kill)."""
        done = asyncio.ensure_future(self.proc.wait())
        ready = asyncio.ensure_future(self.ready.wait())
        try:
            await asyncio.wait([done, ready], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            done.cancel()
            ready.cancel()
            await asyncio.gather(done, ready, return_exceptions=True)
        if self.ready.is_set():
            return True
        if self.proc.returncode is not None:
            return False
        raise AssertionError(f"node not ready after {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)

    async def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (a clean stop), SIGKILL if it does not end in time; returns the exit code."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.kill()
        return await self.finish()

    async def finish(self, timeout: float = 30.0) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.wait_for(self._reader, timeout)
        if self.proc.stdout is not None:
            self.stdout = await self.proc.stdout.read()
        return code

    def log(self) -> str:
        return b"".join(self.lines).decode("utf-8", "replace")[-4000:]


async def enqueue(url: str, task_id: str, target: str, input: Any = None) -> None:
    """A pending workflow task nobody holds yet: the next node to look claims it."""
    store = await open_store(url)
    try:
        now = time.time()
        await store.task_create(TaskRecord(id=task_id, kind="workflow", target=target, input=input,
                                           status="pending", owner=None, lease_expires_at=None,
                                           created_at=now, updated_at=now))
    finally:
        await store.close()


async def until(check, *, timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``await check()`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)
