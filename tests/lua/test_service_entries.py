"""process.service entries: dependency order, restart policy with backoff, reverse stop (SPEC §4)."""

from __future__ import annotations

import asyncio
import logging

import pytest
import yaml

from tests.lua.proc_helpers import wait_until
from wippy_agents.app import App
from wippy_agents.errors import ConfigError
from wippy_agents.lua.service_entries import ServiceSpec, start_order

SERVICE = """
return {handler = function(args)
  process.set_options{trap_links = true}
  process.send("collector", "started", args.name)
  if args.crash then error("service " .. args.name .. " crashed") end
  if args.finish then return "finished" end
  local ev = process.events():receive()
  process.send("collector", "stopping", {name = args.name, kind = ev.kind})
end}
"""


def spec(id: str, *deps: str, auto: bool = True) -> ServiceSpec:
    return ServiceSpec(id=id, process="app:p", host="app:h", depends_on=deps, auto_start=auto)


def test_start_order_puts_dependencies_first():
    order = start_order([spec("app:c", "app:b"), spec("app:a"), spec("app:b", "app:a")])
    assert [s.id for s in order] == ["app:a", "app:b", "app:c"]


def test_a_dependency_is_started_even_without_auto_start_and_others_are_not():
    order = start_order([spec("app:web", "app:db"), spec("app:db", auto=False), spec("app:idle", auto=False)])
    assert [s.id for s in order] == ["app:db", "app:web"]


def test_a_dependency_cycle_is_a_config_error_naming_the_cycle():
    with pytest.raises(ConfigError, match="app:a -> app:b -> app:a"):
        start_order([spec("app:a", "app:b"), spec("app:b", "app:a")])


def test_an_unknown_dependency_is_a_config_error():
    with pytest.raises(ConfigError, match="'app:x' depends on 'app:ghost'"):
        start_order([spec("app:x", "app:ghost")])


def test_backoff_doubles_up_to_the_cap():
    s = ServiceSpec(id="a:b", process="a:p", host="a:h", backoff=0.5, max_backoff=3.0)
    assert [s.delay(k) for k in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_bare_names_resolve_in_the_service_namespace():
    s = ServiceSpec.from_entry({"id": "app.svc:web", "data": {"process": "p", "host": "app:h",
                                                                "depends_on": ["db"]}})
    assert (s.process, s.host, s.depends_on) == ("app.svc:p", "app:h", ("app.svc:db",))


def _app(tmp_path, services: list[dict]) -> str:
    entries = [{"name": "processes", "kind": "process.host", "shutdown_timeout": 5},
               {"name": "svc", "kind": "process.lua", "source": SERVICE, "method": "handler"}]
    entries += [{"kind": "process.service", "process": "svc", "host": "processes", **s} for s in services]
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump_all([{"wippy": {"store": f"sqlite:///{tmp_path}/state.db"}},
                                        {"namespace": "app", "entries": entries}]))
    return str(path)


class Collector:
    def __init__(self, app: App) -> None:
        self.q: asyncio.Queue = asyncio.Queue()
        app.node.spawn(self._run, name="collector")

    async def _run(self, proc) -> None:
        while True:
            m = await proc.receive()
            self.q.put_nowait((m.topic, m.payload))

    async def next(self):
        return await asyncio.wait_for(self.q.get(), 10)


async def test_services_start_in_dependency_order_and_stop_in_reverse(tmp_path):
    path = _app(tmp_path, [
        {"name": "c", "args": {"name": "c"}, "depends_on": ["b"]},
        {"name": "a", "args": {"name": "a"}},
        {"name": "b", "args": {"name": "b"}, "depends_on": ["a"]},
        {"name": "off", "args": {"name": "off"}, "auto_start": False},
    ])
    app = await App.open(path)
    try:
        col = Collector(app)
        started = await app.processes.start_services()
        assert started == ["app:a", "app:b", "app:c"]
        # each started (initialised) in that order; their handlers then run concurrently (worker threads)
        assert sorted([await col.next() for _ in range(3)]) == [("started", "a"), ("started", "b"), ("started", "c")]
    finally:
        await app.processes.close()
        stops = [col.q.get_nowait() for _ in range(col.q.qsize())]
        await app.close()
    assert stops == [("stopping", {"name": n, "kind": "CANCEL"}) for n in ("c", "b", "a")]


async def test_a_crashing_service_is_restarted_with_backoff_then_given_up(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="wippy_agents")
    path = _app(tmp_path, [{"name": "flaky", "args": {"name": "flaky", "crash": True},
                            "restart": {"backoff": 0.01, "max_backoff": 0.05, "max_restarts": 3, "period": 60}}])
    app = await App.open(path)
    try:
        col = Collector(app)
        await app.processes.start_services()
        await wait_until(lambda: "giving up" in caplog.text, timeout=10)
        starts = [col.q.get_nowait() for _ in range(col.q.qsize())]
        assert starts == [("started", "flaky")] * 4  # the first start and three restarts
        assert caplog.text.count("service app:flaky: restarting in") == 3
    finally:
        await app.close()


async def test_a_transient_service_that_returns_is_not_restarted(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="wippy_agents")
    path = _app(tmp_path, [{"name": "once", "args": {"name": "once", "finish": True},
                            "restart": {"policy": "transient", "backoff": 0.01}}])
    app = await App.open(path)
    try:
        col = Collector(app)
        await app.processes.start_services()
        assert await col.next() == ("started", "once")
        await wait_until(lambda: "not restarted" in caplog.text, timeout=10)
        assert col.q.empty()
    finally:
        await app.close()


async def test_services_added_changed_or_deleted_while_running_are_started_upgraded_stopped(tmp_path):
    path = _app(tmp_path, [{"name": "a", "args": {"name": "a"}}])
    app = await App.open(path)
    procs = app.processes
    try:
        col = Collector(app)
        await procs.start_services()
        assert await col.next() == ("started", "a")

        async def change(op, *args):
            cs = app.registry.changeset(author="test")
            getattr(cs, op)(*args)
            await app.registry.apply(cs)

        await change("create", {"id": "app:b", "kind": "process.service", "process": "svc", "host": "processes",
                                "args": {"name": "b"}})
        assert await col.next() == ("started", "b")  # added: started
        await change("update", "app:a", {"args": {"name": "a2"}})
        assert await col.next() == ("stopping", {"name": "a", "kind": "CANCEL"})  # changed: the old one stops ...
        assert await col.next() == ("started", "a2")  # ... and the new one starts
        await change("delete", "app:b")
        assert await col.next() == ("stopping", {"name": "b", "kind": "CANCEL"})  # deleted: stopped
        await wait_until(lambda: "app:b" not in procs.services)
        assert set(procs.services) == {"app:a"}
    finally:
        await app.close()
