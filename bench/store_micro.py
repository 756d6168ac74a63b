"""Micro-benchmark: median µs per ``journal_write`` on the SQLite store.

Measures a journaled step's two writes (``started`` then ``ok``) with the lease
guard (``node=``) as the task engine uses them, next to the floor set by a raw
sqlite3 insert+commit and an aiosqlite execute+commit in the same run.

    .venv/bin/python bench/store_micro.py [--steps 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import aiosqlite

from wippy_agents.store import StepRecord, TaskRecord, open_store


async def bench_store(path: Path, steps: int) -> tuple[list[float], list[float]]:
    store = await open_store(f"sqlite:///{path}")
    try:
        await store.task_create(TaskRecord(id="bench", kind="workflow", target="bench:t", input=None))
        await store.task_claim("bench", "n1", 3600)
        started, finished = [], []
        for seq in range(steps):
            t0 = time.perf_counter()
            await store.journal_write(StepRecord(task_id="bench", seq=seq, name="step", status="started",
                                                 started_at=time.time()), node="n1")
            t1 = time.perf_counter()
            await store.journal_write(StepRecord(task_id="bench", seq=seq, name="step", status="ok",
                                                 result={"n": seq}, started_at=time.time(),
                                                 finished_at=time.time()), node="n1")
            t2 = time.perf_counter()
            started.append(t1 - t0)
            finished.append(t2 - t1)
        return started, finished
    finally:
        await store.close()


def bench_raw(path: Path, steps: int) -> list[float]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE j (k INTEGER PRIMARY KEY, v TEXT)")
    out = []
    for i in range(steps):
        t0 = time.perf_counter()
        db.execute("BEGIN")
        db.execute("INSERT INTO j VALUES (?, ?)", (i, '{"n":1}'))
        db.execute("COMMIT")
        out.append(time.perf_counter() - t0)
    db.close()
    return out


async def bench_aiosqlite(path: Path, steps: int) -> list[float]:
    async with aiosqlite.connect(path) as db:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("CREATE TABLE j (k INTEGER PRIMARY KEY, v TEXT)")
        out = []
        for i in range(steps):
            t0 = time.perf_counter()
            await db.execute("INSERT INTO j VALUES (?, ?)", (i, '{"n":1}'))
            await db.commit()
            out.append(time.perf_counter() - t0)
        return out


def us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    steps = ap.parse_args().steps
    with tempfile.TemporaryDirectory() as tmp:
        started, finished = asyncio.run(bench_store(Path(tmp) / "store.db", steps))
        raw = bench_raw(Path(tmp) / "raw.db", steps)
        aio = asyncio.run(bench_aiosqlite(Path(tmp) / "aio.db", steps))
    step = [a + b for a, b in zip(started, finished)]
    print(f"journal_write on SQLite, {steps} steps, median µs (lease-guarded, WAL + synchronous=NORMAL)")
    print(f"  started row             {us(started):8.1f}")
    print(f"  finished row            {us(finished):8.1f}")
    print(f"  one step (both rows)    {us(step):8.1f}   target <= 200")
    print(f"  raw sqlite3 insert+commit          {us(raw):8.1f}   (floor, blocks the loop)")
    print(f"  aiosqlite execute+commit (2 hops)  {us(aio):8.1f}   ratio store-row/aiosqlite "
          f"{us(finished) / us(aio):.2f}")


if __name__ == "__main__":
    main()
