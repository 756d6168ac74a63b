"""Registry benchmark (issues 3 and 14): save -> registry.changed, apply with the
SQLite write, get; and a large app (100 files x 100 entries, half registry.entry,
half one-line function.lua): load, restart, apply and rollback against
same-run peers.

Each figure is printed next to a floor measured in the same run on the same
machine: raw watchfiles detection for a save, a raw sqlite3 WAL commit for
apply, a plain dict lookup for get, the bare ``yaml.CSafeLoader`` parse of the
same files for a load, the same operation on a small registry or a short
history for apply and rollback.

    .venv/bin/python bench/registry.py [--saves 40] [--applies 400] [--versions 2000] [--skip-large]
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

import yaml

from wippy_agents.lua import compile_check
from wippy_agents.registry import AppSettings, Registry
from wippy_agents.registry.validation import code_validator
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


def make_large_app(root: Path, files: int, per_file: int) -> None:
    (root / "src").mkdir(parents=True)
    (root / "wippy.yaml").write_text("sources: [src]\n")
    for f in range(files):
        lines = [f"namespace: app.f{f}", "entries:"]
        for e in range(per_file):
            if e % 2:
                lines.append(f'  - {{name: fn{e}, kind: function.lua, method: handler, source: "return {{handler = function(a) return a end}}"}}')
            else:
                lines.append(f"  - {{name: cfg{e}, kind: registry.entry, host: db{e}.local, port: {5000 + e}}}")
        (root / "src" / f"f{f:03d}.yaml").write_text("\n".join(lines) + "\n")


def bare_parse(root: Path) -> float:
    t0 = time.perf_counter()
    for path in sorted((root / "src").glob("*.yaml")):
        list(yaml.load_all(path.read_text("utf-8"), Loader=yaml.CSafeLoader))
    return time.perf_counter() - t0


def _registry(store) -> Registry:
    reg = Registry(store, author_default="bench")
    reg.add_validator(code_validator(compile_check))
    return reg


async def _apply_ticks(reg: Registry, n: int, key: str = "app.bench:tick") -> list[float]:
    cs = reg.changeset(author="bench")
    if reg.get(key) is None:
        cs.create({"id": key, "kind": "registry.entry", "value": 0})
        await reg.apply(cs)
    out = []
    for i in range(1, n + 1):
        t0 = time.perf_counter()
        cs = reg.changeset(author="bench", reason="tick")
        cs.update(key, {"value": i})
        await reg.apply(cs)
        out.append(time.perf_counter() - t0)
    return out


async def _rollback_cost(reg: Registry, n: int = 25) -> float:
    """Median time of a rollback to the version before the last tick."""
    out = []
    for _ in range(n):
        await _apply_ticks(reg, 1)
        t0 = time.perf_counter()
        await reg.rollback(reg.version - 1)
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


async def large(tmp: Path, versions: int) -> list[tuple]:
    root = tmp / "large"
    make_large_app(root, 100, 100)
    small = tmp / "small"
    make_large_app(small, 1, 100)
    parse = min(bare_parse(root) for _ in range(3))
    settings = AppSettings.load(root)
    firsts = []
    for i in range(2):  # first loads on fresh stores: with the last one below, best of 3 like the parse
        spare = await open_store(f"sqlite:///{tmp / f'first{i}.db'}")
        try:
            reg = _registry(spare)
            t0 = time.perf_counter()
            await reg.load(settings)
            firsts.append(time.perf_counter() - t0)
            await reg.close()
        finally:
            await spare.close()
    store = await open_store(settings.store)
    try:
        reg = _registry(store)
        t0 = time.perf_counter()
        await reg.load(settings)
        first = min(firsts + [time.perf_counter() - t0])
        assert len(reg.snapshot()) == 10_000, len(reg.snapshot())
        await _apply_ticks(reg, 50)  # warm-up, as for the small one: the load's WAL checkpointed, its garbage collected
        apply_big = statistics.median(await _apply_ticks(reg, 200))
        roll_short = await _rollback_cost(reg)
        await _apply_ticks(reg, max(0, versions - reg.version))
        roll_long = await _rollback_cost(reg)
        stored = reg.version
        await reg.close()
        restarts = []
        for _ in range(3):
            reg = _registry(store)
            t0 = time.perf_counter()
            await reg.load(settings)
            restarts.append(time.perf_counter() - t0)
            assert reg.version == stored, (reg.version, stored)
            await reg.close()
        restart, again = restarts[0], min(restarts[1:])  # the first checks every version since the load
    finally:
        await store.close()
    s_settings = AppSettings.load(small)
    s_store = await open_store(s_settings.store)
    try:
        reg = _registry(s_store)
        await reg.load(s_settings)
        await _apply_ticks(reg, 50)
        apply_small = statistics.median(await _apply_ticks(reg, 200))
        await reg.close()
    finally:
        await s_store.close()
    return [
        ("load 10k entries (Lua checked, 1 version)", first * 1e3, "ms", "bare CSafeLoader parse", parse * 1e3, 2.0),  # each best of 3
        (f"restart, 10k unchanged, {stored} versions", restart * 1e3, "ms", "first load", first * 1e3, 0.25),
        ("restart again (nothing since)", again * 1e3, "ms", "first load", first * 1e3, 0.25),
        ("apply 1-entry changeset at 10k entries", apply_big * 1e3, "ms", "same at 100 entries", apply_small * 1e3, 1.2),
        (f"rollback at {stored} versions", roll_long * 1e3, "ms", "rollback at ~200 versions", roll_short * 1e3, 1.2),
    ]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--saves", type=int, default=40)
    ap.add_argument("--applies", type=int, default=400)
    ap.add_argument("--versions", type=int, default=2000)
    ap.add_argument("--skip-large", action="store_true")
    opts = ap.parse_args()
    if not opts.skip_large:
        with tempfile.TemporaryDirectory() as tmp:
            rows = await large(Path(tmp), opts.versions)
        print(f"{'large app (100 files x 100 entries)':44} {'value':>10} {'peer (same run)':26} {'peer':>10} {'ratio':>6} {'max':>5}  ok")
        for name, value, unit, peer, floor, limit in rows:
            ratio = value / floor
            print(f"{name:44} {value:8.1f}{unit} {peer:26} {floor:8.1f}{unit} {ratio:6.2f} {limit:5.2f}  {'yes' if ratio <= limit else 'NO'}")
        print()
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
