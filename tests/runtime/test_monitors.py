"""Monitors — oracle: erlang:monitor/2, erlang:demonitor/2, and registered names (erlang:register/2)."""

from __future__ import annotations

from wippy_agents.runtime import Down

from .helpers import Probe, echo, idle


async def test_monitor_delivers_down_with_exit_reason(node, exits):
    watcher = Probe(node)
    pid = node.spawn(echo)
    ref = watcher.proc.monitor(pid)
    node.send(pid, "stop", "finished")
    msg = await watcher.next()
    assert msg.topic == "DOWN" and msg.payload == Down(ref=ref, pid=pid, reason="finished")


async def test_monitor_of_dead_pid_delivers_noproc_down_at_once(node, exits):
    pid = node.spawn(echo)
    node.exit(pid, "kill")
    await exits.of(pid)
    watcher = Probe(node)
    ref = watcher.proc.monitor(pid)
    assert (await watcher.next()).payload == Down(ref=ref, pid=pid, reason="noproc")


async def test_monitor_of_unregistered_name_delivers_noproc_down(node):
    watcher = Probe(node)
    ref = watcher.proc.monitor("nobody")
    assert (await watcher.next()).payload == Down(ref=ref, pid="nobody", reason="noproc")


async def test_monitors_stack_one_down_per_monitor(node):
    watcher = Probe(node)
    pid = node.spawn(idle)
    refs = {watcher.proc.monitor(pid) for _ in range(3)}
    assert len(refs) == 3
    node.exit(pid, "bye")
    got = {(await watcher.next()).payload.ref for _ in range(3)}
    assert got == refs
    assert await watcher.settle() == []


async def test_demonitor_stops_down_delivery(node, exits):
    watcher = Probe(node)
    pid = node.spawn(idle)
    keep = watcher.proc.monitor(pid)
    drop = watcher.proc.monitor(pid)
    assert watcher.proc.demonitor(drop) is True
    assert watcher.proc.demonitor(drop) is False
    node.exit(pid, "bye")
    assert (await watcher.next()).payload.ref == keep
    assert await watcher.settle() == []


async def test_demonitor_flush_removes_an_already_queued_down(node, exits):
    target = node.spawn(idle)
    watcher = node.process(node.spawn(idle))
    ref = watcher.monitor(target)
    node.exit(target, "bye")
    await exits.of(target)
    assert len(watcher.mailbox) == 1
    assert watcher.demonitor(ref, flush=True) is False  # the monitor already fired
    assert len(watcher.mailbox) == 0


async def test_monitor_is_one_way_and_does_not_kill_the_watcher(node, exits):
    watcher = Probe(node)
    pid = node.spawn(echo)
    watcher.proc.monitor(pid)
    node.send(pid, "crash")
    assert (await watcher.next()).topic == "DOWN"
    assert node.is_alive(watcher.pid)


async def test_spawn_monitored_monitors_before_the_child_runs(node):
    watcher = Probe(node)

    async def quick(proc):
        raise ValueError("at once")

    pid, ref = watcher.proc.spawn_monitored(quick)
    msg = await watcher.next()
    assert msg.payload.ref == ref and msg.payload.pid == pid
    assert isinstance(msg.payload.reason, ValueError)


async def test_monitors_held_by_a_dead_process_are_removed_from_the_target(node, exits):
    watcher = node.spawn(idle)
    target = node.spawn(idle)
    node.process(watcher).monitor(target)
    node.exit(watcher, "bye")
    await exits.of(watcher)
    assert not node.process(target)._monitors


async def test_name_is_freed_before_down_is_delivered(node, exits):
    seen = []

    async def watcher_body(proc, target):
        proc.monitor(target)
        await proc.receive("DOWN")
        seen.append(proc.node.whereis("svc"))

    target = node.spawn(idle, name="svc")
    w = node.spawn(watcher_body, target)
    node.exit(target, "bye")
    await exits.of(w)
    assert seen == [None]


async def test_name_is_freed_before_exit_is_delivered(node):
    trapper = Probe(node, trap_exit=True)
    child = trapper.proc.spawn_linked(idle, name="svc")
    node.exit(child, "bye")
    msg = await trapper.next()
    assert msg.topic == "EXIT"
    # at delivery time the name was already free: a new process can take it at once
    node.spawn(idle, name="svc")
