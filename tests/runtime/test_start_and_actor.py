"""Starting processes (StartError, init_ack) and class-based Actors with hooks."""

from __future__ import annotations

import asyncio

import pytest

from wippy_agents.errors import ProcessDead, StartError, UsageError
from wippy_agents.runtime import Actor, Exit

from .helpers import Probe, echo, until


class Counter(Actor):
    async def on_start(self, start=0):
        self.n = start

    async def handle(self, msg):
        if msg.topic == "add":
            self.n += msg.payload
        return self.n


class FailsToStart(Actor):
    async def on_start(self):
        raise ValueError("no config")


class Recorder(Actor):
    events: list = []

    async def on_start(self, log):
        self.log = log

    async def handle(self, msg):
        if msg.topic == "crash":
            raise RuntimeError("handler blew up")
        if msg.topic == "later":
            self.pending = msg
            return Actor.NOREPLY
        if msg.topic == "answer":
            self.proc.reply(self.pending, msg.payload)
        if msg.topic == "quit":
            self.proc.stop("done")
        return "ok"

    async def on_stop(self, reason):
        self.log.append(reason)


async def test_actor_replies_with_handle_return_value(node):
    pid = await node.start(Counter, 10)
    assert await node.call(pid, "add", 5) == 15
    assert await node.call(pid, "get") == 15


async def test_actor_is_a_fresh_instance_per_start(node):
    a = await node.start(Counter, 1)
    b = await node.start(Counter, 100)
    await node.call(a, "add", 1)
    assert await node.call(b, "get") == 100


async def test_process_raising_during_start_gives_start_error_and_node_keeps_running(node, exits):
    with pytest.raises(StartError, match="failed to start: ValueError: no config") as info:
        await node.start(FailsToStart)
    assert isinstance(info.value.__cause__, ValueError)
    assert await node.call(node.spawn(echo), "alive?", True) is True


async def test_function_body_raising_before_first_receive_gives_start_error(node):
    async def bad(proc):
        raise KeyError("missing")

    with pytest.raises(StartError, match="KeyError"):
        await node.start(bad)


async def test_function_body_is_started_at_its_first_receive(node):
    async def body(proc, log):
        log.append("init")
        await proc.receive()

    log = []
    pid = await node.start(body, log)
    assert log == ["init"] and node.is_alive(pid)


async def test_start_that_never_acknowledges_times_out_and_kills(node, exits):
    async def slow(proc):
        await asyncio.Event().wait()

    with pytest.raises(StartError, match="did not finish starting within 0.01s") as info:
        await node.start(slow, timeout=0.01)
    assert await exits.of(info.value.details["pid"]) == "killed"


async def test_start_link_failure_also_signals_the_linked_parent(node, exits):
    parent = Probe(node, trap_exit=True)
    with pytest.raises(StartError):
        await parent.proc.start_link(FailsToStart)
    msg = await parent.next()
    assert msg.topic == "EXIT" and isinstance(msg.payload.reason, ValueError)


async def test_actor_on_stop_runs_on_crash_and_callers_get_process_dead(node):
    log = []
    pid = await node.start(Recorder, log)
    with pytest.raises(ProcessDead):
        await node.call(pid, "crash", None)
    await until(lambda: log)
    assert isinstance(log[0], RuntimeError)


async def test_actor_on_stop_runs_on_exit_signal_but_not_on_kill(node, exits):
    log = []
    pid = await node.start(Recorder, log)
    node.exit(pid, "shutdown")
    assert await exits.of(pid) == "shutdown"
    assert log == ["shutdown"]
    log2 = []
    pid2 = await node.start(Recorder, log2)
    node.exit(pid2, "kill")
    await exits.of(pid2)
    assert log2 == []


async def test_actor_stop_ends_it_with_the_reason(node, exits):
    log = []
    pid = await node.start(Recorder, log)
    node.send(pid, "quit")
    assert await exits.of(pid) == "done"
    assert log == ["done"]


async def test_actor_noreply_defers_the_answer(node):
    pid = await node.start(Recorder, [])
    pending = asyncio.ensure_future(node.call(pid, "later"))
    await until(lambda: node.process(pid).mailbox.delivered == 1)
    node.send(pid, "answer", 42)
    assert await asyncio.wait_for(pending, 2) == 42


async def test_trapping_actor_stops_on_exit_from_its_parent(node, exits):
    log = []
    parent = Probe(node, trap_exit=True)
    pid = await parent.proc.start_link(Recorder, log, trap_exit=True)
    parent.proc.exit(pid, "shutdown")
    assert await exits.of(pid) == "shutdown"
    assert log == ["shutdown"]
    assert (await parent.next()).payload == Exit(pid=pid, reason="shutdown")


async def test_spawning_something_that_is_not_a_body_is_a_usage_error(node):
    def sync_body(proc):
        return 1

    with pytest.raises(UsageError, match="async function"):
        node.spawn(sync_body)
    with pytest.raises(UsageError):
        node.spawn("not callable")
    assert node.processes() == []


async def test_start_link_timeout_unlinks_before_killing_so_the_starter_survives(node, exits):
    async def slow(proc):
        await asyncio.Event().wait()

    parent = Probe(node)  # not trapping: a killed linked child would take it down
    with pytest.raises(StartError, match="did not finish starting") as info:
        await parent.proc.start_link(slow, timeout=0.01)
    assert await exits.of(info.value.details["pid"]) == "killed"
    assert await parent.settle() == []
    assert node.is_alive(parent.pid)
