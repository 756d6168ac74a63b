"""Ctrl-C loses nothing (SPEC §7 "Interrupts lose nothing", issue 12).

``wippy agent run`` is interrupted with SIGINT at seeded points — while the
model streams, inside a tool, between steps — and rerun with its
``--task-id`` each time: every interrupt prints one line and leaves the task
``pending`` with no error journaled, and no reply journaled before is asked
of the model again. Then a provider down for good (a failed task) is
continued with ``wippy tasks resume ID --retry`` once it is back.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sys
from pathlib import Path

import pytest
import yaml

from wippy_agents.store import open_store

from ..agents.helpers import app_text, call

SLOW_LUA = "return {handler = function(a) time.sleep('150ms'); return {slept = a.n} end}"
SLOW = {"name": "slow", "kind": "function.lua", "meta": {"type": "tool", "description": "Sleep, then answer"},
        "source": SLOW_LUA, "modules": ["time"],
        "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}
CHUNKS = {"chunks": ["Let ", "me ", "work ", "on it. "], "delay": 0.08}
SCRIPT = [
    {**CHUNKS, "tool_calls": [call("add", x=1, y=2)]},
    {**CHUNKS, "tool_calls": [call("slow", n=1)]},
    {**CHUNKS, "tool_calls": [call("add", x=3, y=4)]},
    {**CHUNKS, "tool_calls": [call("slow", n=2)]},
    {**CHUNKS, "tool_calls": [call("add", x=0, y=0)]},
    {**CHUNKS, "tool_calls": [call("slow", n=3)]},
    {**CHUNKS, "tool_calls": [call("add", x=0, y=0)]},
    {"chunks": ["sum ", "of ", "sums: ", "10"], "delay": 0.08},
]
SEED = 1212
INTERRUPTS = 10


async def _agent_run(app: Path, store: str, task_id: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wippy_agents.cli", "agent", "run", "app.agents:a", "add things",
        "--task-id", task_id, "--app", str(app), "--store", store,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ})


async def _journal(store, task_id):
    return await store.journal_load(task_id) if await store.task_get(task_id) else []


@pytest.mark.timeout(240)
async def test_sigint_at_seeded_points_then_a_rerun_repeats_no_journaled_model_call(tmp_path):
    app = tmp_path / "app.yaml"
    app.write_text(app_text(SCRIPT, tools=[SLOW]))
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = await open_store(url)
    rng = random.Random(SEED)
    interrupted, live_calls = 0, 0
    try:
        for attempt in range(INTERRUPTS + 5):
            before = await _journal(store, "t1")
            models_before = sum(1 for s in before if s.name == "model" and s.status == "ok")
            proc = await _agent_run(app, url, "t1")
            last = attempt >= INTERRUPTS
            if not last:
                # A seeded point: once this process runs the task, after 0..1 more journal rows,
                # then 0..300 ms on (mid-stream, mid-tool or between steps).
                grow = rng.randint(0, 1)
                deadline = asyncio.get_running_loop().time() + 30
                while proc.returncode is None and asyncio.get_running_loop().time() < deadline:
                    task = await store.task_get("t1")
                    if (task is not None and task.status == "running" and task.owner is not None
                            and len(await _journal(store, "t1")) >= len(before) + grow):
                        break
                    await asyncio.sleep(0.01)
                await asyncio.sleep(rng.uniform(0.0, 0.3))
                if proc.returncode is None:
                    proc.send_signal(signal.SIGINT)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            text = err.decode()
            steps = await _journal(store, "t1")
            assert not [s for s in steps if s.status == "error"], (text, steps)
            if proc.returncode == 130:
                interrupted += 1
                lines = [ln for ln in text.splitlines() if "interrupted" in ln]
                assert lines == [f"interrupted: task t1 is pending; resume it with `wippy agent run app.agents:a "
                                 f"'add things' --task-id t1`"], text
                task = await store.task_get("t1")
                assert (task.status, task.owner, task.error) == ("pending", None, None), (task, text)
                continue
            assert proc.returncode == 0, text
            made = int(re.search(r"model calls: (\d+)", text).group(1))
            live_calls += made
            assert made == len(SCRIPT) - models_before, text  # no reply journaled before was asked again
            assert out.decode().strip().endswith("sum of sums: 10")
            break
        final = await store.task_get("t1")
        steps = await store.journal_load("t1")
    finally:
        await store.close()
    assert interrupted == INTERRUPTS, interrupted
    assert final.status == "succeeded"
    assert [s.name for s in steps].count("model") == len(SCRIPT)
    assert [s.name for s in steps].count("tool:slow") == 3
    print(f"{interrupted} interrupts, then a rerun made {live_calls} model call(s)")


@pytest.mark.timeout(120)
async def test_a_failed_task_continues_with_resume_retry_once_the_provider_is_back(tmp_path):
    """The scripted model's second reply is a server error (the provider exhausted its retries):
    the task fails; `tasks resume --retry` runs that model call again on a model that answers."""
    down = [{"tool_calls": [call("add", x=1, y=2)]}, {"error": {"type": "ProviderError", "message": "HTTP 500"}}]
    up = [down[0], {"text": "sum: 3"}]
    app = tmp_path / "app.yaml"
    app.write_text(app_text(down))
    url = f"sqlite:///{tmp_path / 'state.db'}"
    proc = await _agent_run(app, url, "t2")
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1 and "HTTP 500" in err.decode(), err.decode()
    store = await open_store(url)
    try:
        assert (await store.task_get("t2")).status == "failed"
        app.write_text(app_text(up))  # the provider is back
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wippy_agents.cli", "tasks", "resume", "t2", "--retry", "--app", str(app),
            "--store", url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert yaml.safe_load(out.decode())["answer"] == "sum: 3"
        steps = await store.journal_load("t2")
    finally:
        await store.close()
    assert [(s.name, s.status) for s in steps] == [("model", "ok"), ("tool:add", "ok"), ("model", "ok")]
