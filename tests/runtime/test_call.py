"""call/reply: replies never go through the mailbox, dead callees fail at once, no caller hangs."""

from __future__ import annotations

import asyncio

import pytest

from wippy_agents.errors import CallTimeout, InvalidPayload, ProcessDead, UsageError

from .helpers import WAIT, Probe, echo, idle, until


async def test_call_returns_the_reply(node):
    pid = node.spawn(echo)
    assert await node.call(pid, "ping", {"n": 1}) == {"n": 1}


async def test_call_between_processes_carries_sender_and_ref(node):
    server = Probe(node)
    result = []

    async def client(proc):
        result.append(await proc.call(server.pid, "q", 2))

    cpid = node.spawn(client)
    msg = await server.next()
    assert msg.sender == cpid and msg.ref is not None
    server.proc.reply(msg, 4)
    await until(lambda: result == [4])


async def test_reply_never_enters_the_callers_mailbox(node):
    result = []

    async def client(proc, server):
        proc.send(proc.pid, "noise", 1)
        result.append(await proc.call(server, "q", 5))
        result.append(len(proc.mailbox))

    server = node.spawn(echo)
    node.spawn(client, server)
    await until(lambda: len(result) == 2)
    assert result == [5, 1]


async def test_call_to_a_dead_pid_raises_process_dead_at_once(node, exits):
    pid = node.spawn(echo)
    node.exit(pid, "kill")
    await exits.of(pid)
    with pytest.raises(ProcessDead, match="not alive"):
        await node.call(pid, "ping", timeout=None)


async def test_call_to_an_unregistered_name_raises_process_dead(node):
    with pytest.raises(ProcessDead, match="ghost"):
        await node.call("ghost", "ping", timeout=None)


async def test_call_to_a_dying_process_raises_at_once(node):
    async def slow_exit(proc):
        try:
            await proc.receive()
        finally:
            await asyncio.Event().wait()  # stuck in clean-up until killed

    pid = node.spawn(slow_exit)
    await until(lambda: node.process(pid).mailbox.statistics().waiting)
    node.exit(pid, "shutdown")
    with pytest.raises(ProcessDead, match="exiting"):
        await node.call(pid, "ping", timeout=None)
    node.exit(pid, "kill")


async def test_callee_dying_mid_call_raises_process_dead_without_timeout(node):
    server = Probe(node)

    async def ask():
        return await node.call(server.pid, "q", None, timeout=None)

    task = asyncio.ensure_future(ask())
    await server.next()
    node.exit(server.pid, "boom")
    with pytest.raises(ProcessDead, match="'boom'"):
        await asyncio.wait_for(task, WAIT)


async def test_callee_crashing_while_handling_raises_process_dead(node):
    pid = node.spawn(echo)
    with pytest.raises(ProcessDead, match="RuntimeError: kaput"):
        await node.call(pid, "crash", "kaput", timeout=None)


async def test_call_without_reply_raises_call_timeout(node):
    pid = node.spawn(idle)
    with pytest.raises(CallTimeout, match="within 0.01s"):
        await node.call(pid, "never", None, timeout=0.01)
    assert node.is_alive(pid)
    assert node._calls == {}


async def test_late_reply_after_timeout_is_dropped(node):
    server = Probe(node)
    with pytest.raises(CallTimeout):
        await node.call(server.pid, "q", None, timeout=0.01)
    msg = await server.next()
    assert server.proc.reply(msg, "late") is False


async def test_reply_to_a_sent_message_is_a_usage_error(node):
    server = Probe(node)
    node.send(server.pid, "plain", 1)
    msg = await server.next()
    with pytest.raises(UsageError, match="sent with send"):
        server.proc.reply(msg, 2)


async def test_call_to_self_is_refused_instead_of_hanging(node):
    errors = []

    async def body(proc):
        try:
            await proc.call(proc.pid, "me", None)
        except UsageError as exc:
            errors.append(exc)

    node.spawn(body)
    await until(lambda: errors)


async def test_reply_is_copied(node):
    shared = {"items": [1]}

    async def server(proc):
        msg = await proc.receive()
        proc.reply(msg, shared)

    got = await node.call(node.spawn(server), "q")
    shared["items"].append(2)
    assert got == {"items": [1]}


async def test_call_with_uncopyable_payload_raises_invalid_payload(node):
    pid = node.spawn(echo)
    with pytest.raises(InvalidPayload, match=r"payload\['f'\]"):
        await node.call(pid, "q", {"f": lambda: 1})


async def test_cancelled_caller_leaves_no_pending_call_behind(node):
    pid = node.spawn(idle)
    task = asyncio.ensure_future(node.call(pid, "q", None, timeout=None))
    await until(lambda: node._calls)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert node._calls == {} and not node.process(pid)._monitors
