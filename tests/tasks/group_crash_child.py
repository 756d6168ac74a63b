"""A node process for the group-commit crash test: 100 concurrent tasks, SIGKILLed anywhere.

``python tests/tasks/group_crash_child.py STORE_URL LOG_FILE`` — starts (or,
after a kill, recovers) tasks ``g0`` … ``g99`` of ``STEPS`` steps each,
alternating idempotent and non-idempotent steps. Every effect appends
``effect TASK SEQ PID`` to LOG_FILE before its step returns; every
non-idempotent step appends ``ack TASK SEQ`` once ``ctx.step`` returned it
(acknowledged). One ``write`` per line on an O_APPEND file: a line is whole
or absent after SIGKILL. Prints DONE when every task has ended.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from wippy_agents.errors import TaskStranded  # noqa: E402
from wippy_agents.store import open_store  # noqa: E402
from wippy_agents.tasks import TaskEngine  # noqa: E402

TASKS = 100
STEPS = 8


def idempotent(i: int) -> bool:
    return i % 2 == 1


async def main(url: str, log_path: str) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def log(line: str) -> None:
        os.write(fd, (line + "\n").encode())

    store = await open_store(url)
    engine = TaskEngine(store, node_name="crashy", lease_seconds=30.0, heartbeat_seconds=5.0, claim_interval=0,
                        max_tasks=TASKS * 2)

    async def flow(ctx):
        tid = ctx.task.id
        for i in range(STEPS):

            async def work(i=i):
                await asyncio.sleep(0)  # other tasks' steps land in the same tick
                log(f"effect {tid} {i} {os.getpid()}")
                return i

            await ctx.step(f"s{i}", work, idempotent=idempotent(i))
            if not idempotent(i):
                log(f"ack {tid} {i}")
        return tid

    engine.register_kind("flow", flow)
    await engine.recover()
    for n in range(TASKS):
        await engine.start("flow", "test:group", task_id=f"g{n}")
    print("READY", flush=True)
    for n in range(TASKS):
        try:
            await engine.wait(f"g{n}", timeout=60)
        except TaskStranded:
            pass
    print("DONE", flush=True)
    await engine.close()
    await store.close()
    os.close(fd)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
