"""Micro-benchmark: median µs per ``journal_write`` on the SQLite store.

Measures a journaled step's writes as the task engine makes them (lease-guarded
``node=``, WAL + ``synchronous=NORMAL``), next to the floors measured in the
same run: one aiosqlite thread hand-off doing nothing, aiosqlite's own
``execute`` + ``commit`` (two hand-offs) and raw sqlite3 on the event loop
thread (no hand-off, but it blocks the loop). The variants are interleaved in
rounds so machine load hits them alike.

    .venv/bin/python bench/store_micro.py [--steps 200] [--rounds 10]
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


def started(task: str, seq: int) -> StepRecord:
    return StepRecord(task_id=task, seq=seq, name="step", status="started", started_at=time.time())


def finished(task: str, seq: int) -> StepRecord:
    return StepRecord(task_id=task, seq=seq, name="step", status="ok", result={"n": seq, "text": "sunny"},
                      started_at=time.time(), finished_at=time.time())


async def run(tmp: Path, steps: int, rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {k: [] for k in (
        "hop", "started", "finished", "step2", "step1", "aiosqlite", "raw")}
    store = await open_store(f"sqlite:///{tmp / 'store.db'}")
    aio = await aiosqlite.connect(tmp / "aio.db")
    raw = sqlite3.connect(tmp / "raw.db", isolation_level=None)
    try:
        for db in (raw,):
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE j (k INTEGER PRIMARY KEY, v TEXT)")
        await aio.execute("PRAGMA journal_mode=WAL")
        await aio.execute("PRAGMA synchronous=NORMAL")
        await aio.execute("CREATE TABLE j (k INTEGER PRIMARY KEY, v TEXT)")
        key = 0
        for r in range(rounds):
            two, one = f"two{r}", f"one{r}"
            for tid in (two, one):
                await store.task_create(TaskRecord(id=tid, kind="workflow", target="bench:t", input=None))
                await store.task_claim(tid, "n1", 3600)
            for _ in range(steps):
                t0 = time.perf_counter()
                await aio._execute(lambda: None)
                samples["hop"].append(time.perf_counter() - t0)
            for seq in range(steps):  # the engine today: start, then finish (two hand-offs)
                t0 = time.perf_counter()
                await store.journal_write(started(two, seq), node="n1")
                t1 = time.perf_counter()
                await store.journal_write(finished(two, seq), node="n1")
                t2 = time.perf_counter()
                samples["started"].append(t1 - t0)
                samples["finished"].append(t2 - t1)
                samples["step2"].append(t2 - t0)
            await store.journal_write(started(one, 0), node="n1")
            for seq in range(steps):  # finish N together with start N+1 (one hand-off)
                t0 = time.perf_counter()
                await store.journal_write_many([finished(one, seq), started(one, seq + 1)], node="n1")
                samples["step1"].append(time.perf_counter() - t0)
            for _ in range(steps):
                key += 1
                t0 = time.perf_counter()
                await aio.execute("INSERT INTO j VALUES (?, ?)", (key, '{"n":1}'))
                await aio.commit()
                samples["aiosqlite"].append(time.perf_counter() - t0)
            for _ in range(steps):
                key += 1
                t0 = time.perf_counter()
                raw.execute("BEGIN")
                raw.execute("INSERT INTO j VALUES (?, ?)", (key, '{"n":1}'))
                raw.execute("COMMIT")
                samples["raw"].append(time.perf_counter() - t0)
    finally:
        raw.close()
        await aio.close()
        await store.close()
    return samples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        s = asyncio.run(run(Path(tmp), args.steps, args.rounds))
    us = {k: statistics.median(v) * 1e6 for k, v in s.items()}
    n = args.steps * args.rounds
    print(f"SQLite store journal writes, median µs over {n} samples each (lease-guarded, WAL, synchronous=NORMAL)")
    print(f"  journal_write 'started' row                    {us['started']:7.1f}")
    print(f"  journal_write 'ok' row                         {us['finished']:7.1f}")
    print(f"  step = started + finished (2 hand-offs)        {us['step2']:7.1f}   target <= 200")
    print(f"  step = journal_write_many([ok N, started N+1]) {us['step1']:7.1f}   target <= 200")
    print("floors in the same run")
    print(f"  one aiosqlite hand-off doing nothing           {us['hop']:7.1f}")
    print(f"  aiosqlite execute + commit (2 hand-offs)       {us['aiosqlite']:7.1f}")
    print(f"  raw sqlite3 insert + commit on the loop        {us['raw']:7.1f}   (blocks the event loop)")
    print("ratios")
    print(f"  journal_write row / bare hand-off              {us['finished'] / us['hop']:7.2f}")
    print(f"  journal_write row / aiosqlite execute+commit   {us['finished'] / us['aiosqlite']:7.2f}")


if __name__ == "__main__":
    main()
