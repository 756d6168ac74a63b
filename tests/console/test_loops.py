"""``wippy run --loop``: the stock loop, uvloop when asked (or ``auto``), one clear line when it is missing."""

from __future__ import annotations

import asyncio
import sys

import pytest

from wippy_agents.cli import build_parser
from wippy_agents.console.loops import loop_factory, run_on
from wippy_agents.errors import ConfigError


def test_the_default_is_the_stock_loop_and_a_bad_name_is_one_clear_error(monkeypatch):
    monkeypatch.delenv("WIPPY_LOOP", raising=False)
    assert loop_factory(None) is None and loop_factory("asyncio") is None
    with pytest.raises(ConfigError, match="event loop 'tokio': use one of asyncio, uvloop, auto"):
        loop_factory("tokio")
    monkeypatch.setenv("WIPPY_LOOP", "tokio")
    with pytest.raises(ConfigError, match="'tokio'"):
        loop_factory(None)


def test_uvloop_missing_is_one_line_and_auto_falls_back(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match="'uvloop' is not installed: pip install uvloop"):
        loop_factory("uvloop")
    assert loop_factory("auto") is None
    coro = asyncio.sleep(0)
    with pytest.raises(ConfigError):
        run_on("uvloop", coro)
    assert coro.cr_frame is None  # closed, not left to warn "never awaited"


def test_wippy_run_takes_the_loop_flag():
    args = build_parser().parse_args(["run", "--loop", "uvloop"])
    assert args.loop == "uvloop"
    assert build_parser().parse_args(["run"]).loop is None


def test_a_durable_task_runs_on_uvloop(tmp_path):
    uvloop = pytest.importorskip("uvloop")

    async def main():
        from wippy_agents.store import open_store
        from wippy_agents.tasks import TaskEngine

        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        store = await open_store(f"sqlite:///{tmp_path / 's.db'}")
        engine = TaskEngine(store, node_name="u")

        async def flow(ctx):
            total = 0
            for i in range(5):
                total += await ctx.step(f"s{i}", lambda i=i: i, idempotent=i % 2 == 0)
            return total

        engine.register_kind("flow", flow)
        try:
            task = await engine.start("flow", "app:flow")
            result = await engine.wait(task.id, timeout=10)
            steps = [s.status for s in await store.journal_load(task.id)]
        finally:
            await engine.close()
            await store.close()
        return result, steps

    assert run_on("uvloop", main()) == (10, ["ok"] * 5)
