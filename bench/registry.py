"""Registry benchmark (issue 3): save -> registry.changed, apply with the SQLite write, get.

Each figure is printed next to a floor measured in the same run on the same
machine: raw watchfiles detection for a save, a raw sqlite3 WAL commit for
apply, a plain dict lookup for get.

    .venv/bin/python bench/registry.py [--saves 40] [--applies 400]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import threading
import time
import timeit
from pathlib import Path

from watchfiles._rust_notify import RustNotify

from wippy_agents.registry import AppSettings, Registry
from wippy_agents.store import open_store

TOOL = """\
namespace: app.tools
entries:
  - name: weather
    kind: function.lua
    meta: {{type: tool, description: "Weather {n}"}}
    source: file://weather.lua
    method: handler
    input_schema: {{type: object, properties: {{city: {{type: string}}}}, required: [city]}}
"""
LUA = "return {{ handler = function(args) return {{city = args.city, n = {n}}} end }}\n"


def make_app(root: Path) -> None:
    (root / "tools").mkdir(parents=True)
    (root / "tools" / "weather.yaml").write_text(TOOL.format(n=0))
    (root / "tools" / "weather.lua").write_text(LUA.format(n=0))
    for i in range(50):  # a registry that is not trivially small
        (root / "tools" / f"t{i}.yaml").write_text(
            f"namespace: app.more\nentries:\n  - {{name: e{i}, kind: registry.entry, value: {i}}}\n"
        )


async def save_to_changed(root: Path, reg: Registry, n: int) -> list[float]:
    got = asyncio.Event()
    reg.subscribe(lambda v, ids: got.set())
    reg.watch(debounce_ms=30, step_ms=5)
    out = []
    for i in range(1, n + 1):
        got.clear()
        t0 = time.perf_counter()
        (root / "tools" / "weather.lua").write_text(LUA.format(n=i))
        await asyncio.wait_for(got.wait(), 5)
        out.append(time.perf_counter() - t0)
        await asyncio.sleep(0.02)
    return out


def raw_watchfiles(root: Path, n: int) -> list[float]:
    """Floor: the same save seen by RustNotify alone with the same debounce/step."""
    notify = RustNotify([str(root / "tools")], False, False, 50, True, True)
    stop = threading.Event()
    out = []
    try:
        for i in range(n):
            result: list = []
            th = threading.Thread(target=lambda: result.append(notify.watch(30, 5, 5000, stop)))
            th.start()
            time.sleep(0.01)
            t0 = time.perf_counter()
            (root / "tools" / "weather.lua").write_text(LUA.format(n=1000 + i))
            th.join()
            out.append(time.perf_counter() - t0)
    finally:
        notify.close()
    return out


async def apply_one(reg: Registry, n: int) -> list[float]:
    cs = reg.changeset(author="bench")
    cs.create({"id": "app.bench:counter", "kind": "registry.entry", "value": 0})
    await reg.apply(cs)
    out = []
    for i in range(1, n + 1):
        t0 = time.perf_counter()
        cs = reg.changeset(author="bench", reason="tick")
        cs.update("app.bench:counter", {"value": i})
        await reg.apply(cs)
        out.append(time.perf_counter() - t0)
    return out


def raw_sqlite_commit(path: Path, n: int) -> list[float]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE t (v INTEGER PRIMARY KEY, body TEXT)")
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        db.execute("BEGIN")
        db.execute("INSERT INTO t VALUES (?, ?)", (i, '{"op": "update"}' * 10))
        db.execute("COMMIT")
        out.append(time.perf_counter() - t0)
    db.close()
    return out


def per_call(stmt, number: int = 1_000_000) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=5)) / number


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--saves", type=int, default=40)
    ap.add_argument("--applies", type=int, default=400)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "app"
        make_app(root)
        settings = AppSettings.load(root)
        store = await open_store(settings.store)
        reg = Registry(store)
        try:
            await reg.load(settings)
            saves = await save_to_changed(root, reg, opts.saves)
            applies = await apply_one(reg, opts.applies)
            snap = reg.snapshot()
            key = "app.tools:weather"
            get_reg = per_call(lambda: reg.get(key))
            get_snap = per_call(lambda: snap.get(key))
            plain = dict(snap.as_mapping())
            get_dict = per_call(lambda: plain.get(key))
        finally:
            await reg.close()
            await store.close()
        raw_saves = raw_watchfiles(root, min(opts.saves, 20))
        raw_commits = raw_sqlite_commit(Path(tmp) / "raw.db", opts.applies)

    med = statistics.median
    rows = [
        ("file save -> registry.changed", med(saves) * 1e3, "ms", 50.0, "raw watchfiles detection", med(raw_saves) * 1e3),
        ("apply 1-entry changeset + SQLite", med(applies) * 1e3, "ms", 2.0, "raw sqlite3 WAL commit", med(raw_commits) * 1e3),
        ("reg.get(id) on live snapshot", get_reg * 1e6, "µs", 2.0, "dict.get", get_dict * 1e6),
        ("snapshot.get(id)", get_snap * 1e6, "µs", 2.0, "dict.get", get_dict * 1e6),
    ]
    print(f"{'metric':36} {'median':>10} {'target':>9}  {'ok':3} {'floor (same run)':26} {'floor':>9} {'ratio':>7}")
    for name, value, unit, target, peer, floor in rows:
        ok = "yes" if value <= target else "NO"
        print(f"{name:36} {value:8.3f}{unit:>2} {target:7.1f}{unit:>2}  {ok:3} {peer:26} {floor:7.3f}{unit:>2} {value / floor:6.1f}x")
    print(f"(saves={len(saves)} p90={sorted(saves)[int(len(saves) * 0.9)] * 1e3:.1f} ms; applies={len(applies)} "
          f"p90={sorted(applies)[int(len(applies) * 0.9)] * 1e3:.3f} ms)")


if __name__ == "__main__":
    asyncio.run(main())
