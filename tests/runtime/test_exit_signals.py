"""Exit signals, links and trap_exit — oracle: erlang:exit/2, link/1, process_flag(trap_exit)."""

from __future__ import annotations

import asyncio

import pytest

from wippy_agents.runtime import Exit

from .helpers import Probe, echo, idle, until


async def test_normal_exit_of_linked_process_does_not_kill_non_trapping_peer(node, exits):
    peer = Probe(node)
    child = peer.proc.spawn_linked(echo)
    node.send(child, "stop", "normal")
    assert await exits.of(child) == "normal"
    assert node.is_alive(peer.pid)
    assert peer.proc.links == frozenset()


async def test_error_exit_of_linked_process_kills_non_trapping_peer_with_same_reason(node, exits):
    peer = Probe(node)
    child = peer.proc.spawn_linked(echo)
    node.send(child, "crash", "bad thing")
    reason = await exits.of(peer.pid)
    assert isinstance(reason, RuntimeError) and str(reason) == "bad thing"
    assert reason is exits.reasons[child]


async def test_error_propagates_along_a_chain_of_links(node, exits):
    a = Probe(node)
    b = a.proc.spawn_linked(idle)
    c = node.process(b).spawn_linked(echo)
    node.send(c, "crash", "deep")
    assert str(await exits.of(a.pid)) == "deep"
    assert str(exits.reasons[b]) == "deep"


async def test_trapping_process_receives_exit_message_instead_of_dying(node):
    peer = Probe(node, trap_exit=True)
    child = peer.proc.spawn_linked(echo)
    node.send(child, "crash", "x")
    msg = await peer.next()
    assert msg.topic == "EXIT" and isinstance(msg.payload, Exit)
    assert msg.payload.pid == child and str(msg.payload.reason) == "x"
    assert node.is_alive(peer.pid)


async def test_trapping_process_receives_exit_message_for_normal_exit_of_link(node):
    peer = Probe(node, trap_exit=True)
    child = peer.proc.spawn_linked(echo)
    node.send(child, "stop", "normal")
    msg = await peer.next()
    assert msg.payload == Exit(pid=child, reason="normal")


async def test_exit_normal_to_non_trapping_process_is_ignored(node):
    peer = Probe(node)
    node.exit(peer.pid, "normal")
    await peer.settle()
    assert node.is_alive(peer.pid)


async def test_exit_normal_to_self_terminates_with_normal(node, exits):
    async def body(proc):
        proc.exit(proc.pid, "normal")
        await proc.receive()

    pid = node.spawn(body)
    assert await exits.of(pid) == "normal"


async def test_exit_reason_to_non_trapping_process_terminates_it_with_that_reason(node, exits):
    peer = Probe(node)
    node.exit(peer.pid, {"code": 7})
    assert await exits.of(peer.pid) == {"code": 7}


async def test_exit_reason_to_trapping_process_becomes_exit_message_from_sender(node):
    peer = Probe(node, trap_exit=True)
    sender = Probe(node)
    sender.proc.exit(peer.pid, "shutdown")
    msg = await peer.next()
    assert msg.payload == Exit(pid=sender.pid, reason="shutdown")


async def test_exit_kill_is_untrappable_and_becomes_killed(node, exits):
    peer = Probe(node, trap_exit=True)
    node.exit(peer.pid, "kill")
    assert await exits.of(peer.pid) == "killed"
    assert await peer.settle() == []


async def test_kill_turns_into_killed_for_linked_peers(node, exits):
    watcher = Probe(node, trap_exit=True)
    victim = watcher.proc.spawn_linked(idle)
    node.exit(victim, "kill")
    msg = await watcher.next()
    assert msg.payload == Exit(pid=victim, reason="killed")


async def test_linked_non_trapping_peer_of_killed_process_dies_with_killed(node, exits):
    peer = Probe(node)
    victim = peer.proc.spawn_linked(idle)
    node.exit(victim, "kill")
    assert await exits.of(peer.pid) == "killed"


async def test_exit_kill_interrupts_clean_up_of_an_exiting_process(node, exits):
    async def stubborn(proc):
        try:
            await proc.receive()
        finally:
            await proc.receive("never-sent")  # clean-up that would never end

    pid = node.spawn(stubborn)
    await until(lambda: node.process(pid).mailbox.statistics().waiting)
    node.exit(pid, "shutdown")
    await until(lambda: not node.is_alive(pid))  # exiting, still in clean-up
    assert node.process(pid) is not None
    node.exit(pid, "kill")
    assert await exits.of(pid) == "killed"


async def test_further_exit_signals_to_an_exiting_process_do_not_change_its_reason(node, exits):
    gate = asyncio.Event()

    async def slow_cleanup(proc):
        try:
            await proc.receive()
        finally:
            await gate.wait()

    pid = node.spawn(slow_cleanup)
    await until(lambda: node.process(pid).mailbox.statistics().waiting)
    node.exit(pid, "first")
    node.exit(pid, "second")
    gate.set()
    assert await exits.of(pid) == "first"


async def test_link_is_bidirectional(node, exits):
    a = Probe(node)
    b = Probe(node, trap_exit=True)
    a.proc.link(b.pid)
    assert b.pid in a.proc.links and a.pid in b.proc.links
    node.exit(a.pid, "boom")
    assert (await b.next()).payload == Exit(pid=a.pid, reason="boom")


async def test_unlink_removes_both_directions_so_no_signal_arrives(node, exits):
    a = Probe(node)
    b = Probe(node)
    a.proc.link(b.pid)
    b.proc.unlink(a.pid)
    node.exit(a.pid, "boom")
    await exits.of(a.pid)
    assert node.is_alive(b.pid)


async def test_link_to_dead_pid_sends_noproc_exit_signal(node, exits):
    dead = node.spawn(echo)
    node.exit(dead, "kill")
    await exits.of(dead)
    trapper = Probe(node, trap_exit=True)
    trapper.proc.link(dead)
    assert (await trapper.next()).payload == Exit(pid=dead, reason="noproc")
    plain = Probe(node)
    plain.proc.link(dead)
    assert await exits.of(plain.pid) == "noproc"


async def test_linking_twice_is_one_link(node, exits):
    a = Probe(node, trap_exit=True)
    b = node.spawn(echo)
    a.proc.link(b)
    a.proc.link(b)
    node.exit(b, "boom")
    assert (await a.next()).payload.reason == "boom"
    assert await a.settle() == []


async def test_crash_in_one_process_never_touches_unrelated_processes(node, exits):
    bystanders = [Probe(node) for _ in range(3)]
    pid = node.spawn(echo)
    node.send(pid, "crash")
    await exits.of(pid)
    assert all(node.is_alive(b.pid) for b in bystanders)
    assert await node.call(node.spawn(echo), "still", 1) == 1


@pytest.mark.parametrize("reason", ["shutdown", {"error": "x"}, "custom"])
async def test_abnormal_reasons_kill_linked_non_trapping_peers(node, exits, reason):
    peer = Probe(node)
    child = peer.proc.spawn_linked(echo)
    node.exit(child, reason)
    assert await exits.of(peer.pid) == reason


async def test_a_process_exiting_itself_with_reason_kill_sends_a_trappable_kill_to_links(node, exits):
    # erlang: exit(kill) (exit/1) is not exit(Pid, kill): links get an ordinary signal with reason kill
    trapper = Probe(node, trap_exit=True)
    child = trapper.proc.spawn_linked(echo)
    node.send(child, "stop", "kill")
    assert (await trapper.next()).payload == Exit(pid=child, reason="kill")
    assert node.is_alive(trapper.pid)
    plain = Probe(node)
    child2 = plain.proc.spawn_linked(echo)
    node.send(child2, "stop", "kill")
    assert await exits.of(plain.pid) == "kill"


async def test_stop_is_a_control_signal_an_except_exception_cannot_swallow():
    from wippy_agents.runtime import Node

    node = Node("sig")
    seen = {}
    node.on_exit(seen.__setitem__)

    async def body(proc):
        try:
            proc.stop("bye")
        except Exception:  # must not catch ProcessExit
            seen["swallowed"] = True
        seen["after"] = True

    pid = node.spawn(body)
    for _ in range(100):
        if pid in seen:
            break
        await asyncio.sleep(0.01)
    assert seen.get(pid) == "bye" and "swallowed" not in seen and "after" not in seen
    await node.stop()
