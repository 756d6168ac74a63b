"""send/receive: ordering, selective receive, timeouts, copy semantics, statistics."""

from __future__ import annotations

import pytest

from wippy_agents.errors import ReceiveTimeout, UsageError
from wippy_agents.runtime import Message

from .helpers import Probe, until


async def test_messages_from_one_sender_arrive_in_order(node):
    probe = Probe(node)
    for i in range(5):
        node.send(probe.pid, "n", i)
    assert [(await probe.next()).payload for _ in range(5)] == [0, 1, 2, 3, 4]


async def test_send_from_a_process_names_the_sender(node):
    probe = Probe(node)
    other = Probe(node)
    other.proc.send(probe.pid, "hi", None)
    assert await probe.next() == Message(topic="hi", payload=None, sender=other.pid)


async def test_selective_receive_skips_other_topics_and_keeps_them_in_order(node):
    got = []

    async def body(proc):
        got.append((await proc.receive("b")).payload)
        got.append((await proc.receive()).payload)
        got.append((await proc.receive()).payload)

    pid = node.spawn(body)
    node.send(pid, "a", 1)
    node.send(pid, "a", 2)
    node.send(pid, "b", 3)
    await until(lambda: len(got) == 3)
    assert got == [3, 1, 2]


async def test_selective_receive_accepts_a_tuple_of_topics_and_a_match(node):
    got = []

    async def body(proc):
        got.append(await proc.receive(("x", "y"), match=lambda m: m.payload > 1))
        await proc.receive("never-sent")

    pid = node.spawn(body)
    node.send(pid, "x", 1)
    node.send(pid, "z", 5)
    node.send(pid, "y", 2)
    await until(lambda: got)
    assert got[0].topic == "y" and got[0].payload == 2
    assert len(node.process(pid).mailbox) == 2


async def test_waiting_receiver_gets_matching_message_directly(node):
    got = []

    async def body(proc):
        got.append(await proc.receive("wanted"))

    pid = node.spawn(body)
    await until(lambda: node.process(pid).mailbox.statistics().waiting)
    node.send(pid, "other", 1)
    node.send(pid, "wanted", 2)
    await until(lambda: got)
    assert got[0].payload == 2


async def test_receive_timeout_raises_receive_timeout_and_keeps_waiting_possible(node):
    outcome = []

    async def body(proc):
        try:
            await proc.receive("x", timeout=0.01)
        except ReceiveTimeout as exc:
            outcome.append(str(exc))
        outcome.append((await proc.receive("x", timeout=None)).payload)

    pid = node.spawn(body)
    await until(lambda: outcome)
    assert "no a message with topic 'x' within 0.01s" in outcome[0] or "within 0.01s" in outcome[0]
    node.send(pid, "x", 7)
    await until(lambda: len(outcome) == 2)
    assert outcome[1] == 7


async def test_receive_timeout_zero_polls_the_queue(node):
    outcome = []

    async def body(proc):
        proc.send(proc.pid, "x", 1)
        outcome.append((await proc.receive("x", timeout=0)).payload)
        with pytest.raises(ReceiveTimeout):
            await proc.receive("x", timeout=0)
        outcome.append("timed out")

    node.spawn(body)
    await until(lambda: len(outcome) == 2)
    assert outcome == [1, "timed out"]


async def test_receive_nowait_returns_none_when_nothing_matches(node):
    probe = Probe(node)
    assert probe.proc.receive_nowait("zzz") is None


async def test_sending_then_mutating_does_not_change_what_the_receiver_sees(node):
    probe = Probe(node)
    payload = {"list": [1, 2], "nested": {"k": "v"}}
    node.send(probe.pid, "data", payload)
    payload["list"].append(3)
    payload["nested"]["k"] = "changed"
    assert (await probe.next()).payload == {"list": [1, 2], "nested": {"k": "v"}}


async def test_receiver_mutation_does_not_reach_other_receivers(node):
    a, b = Probe(node), Probe(node)
    data = {"x": [1]}
    node.send(a.pid, "d", data)
    node.send(b.pid, "d", data)
    (await a.next()).payload["x"].append(2)
    assert (await b.next()).payload == {"x": [1]}


async def test_topic_must_be_a_string(node):
    probe = Probe(node)
    with pytest.raises(UsageError, match="topic must be a str"):
        node.send(probe.pid, 42, None)


async def test_mailbox_statistics_are_observable(node):
    async def body(proc):
        await proc.receive("go")

    pid = node.spawn(body)
    await until(lambda: node.process(pid).mailbox.statistics().waiting)
    node.send(pid, "a", 1)
    node.send(pid, "b", 2)
    stats = node.process(pid).mailbox.statistics()
    assert (stats.queued, stats.delivered, stats.received, stats.max_queued) == (2, 2, 0, 2)
    assert stats.waiting and stats.waiting_topic == "go"


async def test_send_after_delivers_later_and_cancel_timer_prevents_it(node):
    probe = Probe(node)
    keep = node.send_after(0.001, probe.pid, "tick", 1)
    drop = probe.proc.send_after(0.001, probe.pid, "tock", 2)
    assert probe.proc.cancel_timer(drop) is True
    assert (await probe.next()).topic == "tick"
    assert node.cancel_timer(keep) is False
    assert await probe.settle() == []


async def test_sending_a_socket_or_lambda_fails_at_send_time_and_the_node_keeps_running(node):
    import socket

    from wippy_agents.errors import InvalidPayload

    probe = Probe(node)
    with socket.socket() as sock:
        with pytest.raises(InvalidPayload, match=r"socket.socket at payload\['conn'\]"):
            node.send(probe.pid, "data", {"conn": sock})
    with pytest.raises(InvalidPayload, match=r"a lambda\) at payload\[0\]"):
        probe.proc.send(probe.pid, "data", [lambda: 1])
    node.send(probe.pid, "fine", [1])
    assert (await probe.next()).topic == "fine"
