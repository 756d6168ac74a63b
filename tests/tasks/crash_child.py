"""A node process for the crash test: run (or resume) one task, get SIGKILLed anywhere.

``python tests/tasks/crash_child.py STORE_URL EFFECTS_DB`` — starts task
``crash`` (idempotent by id), recovers it after a kill, resumes it with
``--retry`` when stranded (logging that in EFFECTS_DB), and prints DONE with
the result once the task has succeeded. Each step writes its side effect to
EFFECTS_DB (a separate SQLite file: the outside world) before it returns.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from wippy_agents.errors import TaskStranded  # noqa: E402
from wippy_agents.store import open_store  # noqa: E402
from wippy_agents.tasks import TaskEngine  # noqa: E402

STEPS = 24


def idempotent(i: int) -> bool:
    return i % 2 == 0


def effect(db_path: str, i: int) -> None:
    db = sqlite3.connect(db_path, timeout=10)
    with db:
        db.execute("INSERT INTO effects (step, pid) VALUES (?, ?)", (i, os.getpid()))
    db.close()


async def main(url: str, effects_db: str) -> None:
    store = await open_store(url)
    engine = TaskEngine(store, node_name="crashy", lease_seconds=5.0, heartbeat_seconds=1.0, claim_interval=0)

    async def flow(ctx):
        total = 0
        for i in range(STEPS):

            async def work(i=i):
                await asyncio.sleep(0.01)  # the kill often lands in here
                effect(effects_db, i)
                await asyncio.sleep(0.005)  # ... or between the effect and its journal write
                return i

            total += await ctx.step(f"s{i}", work, idempotent=idempotent(i))
        return total

    engine.register_kind("flow", flow)
    task = await engine.start("flow", "test:crash", task_id="crash")
    print("READY", flush=True)
    if task.status == "stranded":
        db = sqlite3.connect(effects_db)
        with db:
            db.execute("INSERT INTO retries (seq) VALUES (?)", (task.error["details"]["seq"],))
        db.close()
        await engine.resume("crash", retry=True)
    else:
        await engine.recover()
    try:
        result = await engine.wait("crash", timeout=30)
    except TaskStranded:
        print("STRANDED", flush=True)
    else:
        print(f"DONE {result}", flush=True)
    await engine.close()
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
