"""Replay safety: a registry write made by an agent task is a journaled step; resuming the task
(after the node died right after the write, before its result was journaled) never applies it twice."""

from __future__ import annotations

import asyncio
import time

from ..security.apps import app_yaml, open_app, slug_args

SCRIPT = [
    {"tool_calls": [{"name": "create_tool", "arguments": slug_args()}]},
    {"tool_calls": [{"name": "slugify", "arguments": {"text": "Once Only"}}]},
    {"text": "done: once-only"},
]


async def test_a_task_killed_right_after_its_registry_write_resumes_without_writing_again(tmp_path):
    text = app_yaml(SCRIPT)
    app = await open_app(tmp_path, text)
    written = asyncio.Event()
    real_apply = app.registry.apply

    async def apply_then_hang(cs):
        # Fault injection: the write commits, then the node goes down before the tool returns,
        # so the step's result never reaches the journal.
        version = await real_apply(cs)
        written.set()
        await asyncio.Event().wait()
        return version

    try:
        app.registry.apply = apply_then_hang
        await app.agents.start("app.agents:smith", "slug it", task_id="r1")
        await asyncio.wait_for(written.wait(), 10)
        assert app.registry.version == 2
        pid = app.node.whereis("task:r1")
        assert pid is not None
        app.node.exit(pid, "kill")  # the run dies mid-step (untrappable): nothing more is journaled
        deadline = time.monotonic() + 10
        while app.node.is_alive(pid):
            assert time.monotonic() < deadline, "the killed run did not stop"
            await asyncio.sleep(0.01)
    finally:
        await app.close()  # the task stays 'running' with its lease: recovery resumes it
    steps = [(s.name, s.status) for s in await _journal(tmp_path, "r1")]
    assert ("tool:create_tool", "ok") not in steps  # the write happened, its result was never journaled

    app = await open_app(tmp_path, text)  # recover=True resumes our task
    try:
        result = await app.agents.result("r1", timeout=30)
        assert result.answer == "done: once-only"
        writes = [r for r in await app.registry.history() if "create_tool" in r.reason]
        assert [r.version for r in writes] == [2]  # applied once, answered again from the registry
        assert app.registry.version == 2
        steps = [s for s in await app.store.journal_load("r1") if s.status == "ok"]
        [created] = [s for s in steps if s.name == "tool:create_tool"]
        # the re-run found its own earlier write and answered it (not "already exists")
        assert created.result == {"result": {"id": "app.generated:slugify", "version": 2}}
    finally:
        await app.close()


async def _journal(tmp_path, task_id):
    from wippy_agents.store import open_store

    store = await open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        return await store.journal_load(task_id)
    finally:
        await store.close()
