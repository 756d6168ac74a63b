"""Supervisors — oracle: the OTP `supervisor` module documentation (strategies, restart types,
intensity, shutdown) and the supervision principles in the OTP Design Principles guide."""

from __future__ import annotations

import asyncio

import pytest

from wippy_agents.errors import InvalidSpec, StartError, UsageError
from wippy_agents.runtime import Actor, ChildSpec, Exit, Supervisor, SupervisorSpec
from wippy_agents.runtime.supervisor import supervisor_body

from .helpers import Probe, until


async def worker(proc, tag, log):
    """Logs start/stop; 'crash' crashes it, 'stop' ends it with the payload as reason."""
    log.append(("start", tag))
    try:
        while True:
            msg = await proc.receive()
            if msg.topic == "crash":
                raise RuntimeError(f"{tag} crashed")
            if msg.topic == "stop":
                proc.stop(msg.payload)
            if msg.ref is not None:
                proc.reply(msg, tag)
    finally:
        log.append(("stop", tag))


def spec(strategy="one_for_one", *tags, log, restart="permanent", max_restarts=3, period=5.0, **kw):
    return SupervisorSpec(strategy=strategy, max_restarts=max_restarts, period=period, children=[
        ChildSpec(id=t, start=worker, args=(t, log), restart=restart, name=t, **kw) for t in tags])


async def pids_of(node, sup):
    return {c["id"]: c["pid"] for c in await Supervisor.which_children(node, sup)}


async def crash_and_wait_restart(node, exits, tag):
    old = node.whereis(tag)
    node.send(tag, "crash")
    await exits.of(old)
    await until(lambda: node.whereis(tag) not in (None, old))


async def test_children_start_in_spec_order_each_initialised_before_the_next(node):
    log = []
    await node.start_supervisor(spec("one_for_one", "a", "b", "c", log=log))
    assert log == [("start", "a"), ("start", "b"), ("start", "c")]


async def test_children_stop_in_reverse_order_when_the_supervisor_shuts_down(node, exits):
    log = []
    sup = await node.start_supervisor(spec("one_for_one", "a", "b", "c", log=log))
    log.clear()
    node.exit(sup, "shutdown")
    assert await exits.of(sup) == "shutdown"
    assert log == [("stop", "c"), ("stop", "b"), ("stop", "a")]


async def test_one_for_one_restarts_only_the_crashed_child(node, exits):
    log = []
    sup = await node.start_supervisor(spec("one_for_one", "a", "b", "c", log=log))
    before = await pids_of(node, sup)
    await crash_and_wait_restart(node, exits, "b")
    after = await pids_of(node, sup)
    assert after["a"] == before["a"] and after["c"] == before["c"] and after["b"] != before["b"]


async def test_one_for_all_stops_the_others_in_reverse_and_restarts_all_in_order(node, exits):
    log = []
    sup = await node.start_supervisor(spec("one_for_all", "a", "b", "c", log=log))
    before = await pids_of(node, sup)
    log.clear()
    await crash_and_wait_restart(node, exits, "b")
    await until(lambda: len(log) == 6)
    assert log == [("stop", "b"), ("stop", "c"), ("stop", "a"), ("start", "a"), ("start", "b"), ("start", "c")]
    after = await pids_of(node, sup)
    assert all(after[k] != before[k] for k in "abc")


async def test_rest_for_one_restarts_the_child_and_those_started_after_it(node, exits):
    log = []
    sup = await node.start_supervisor(spec("rest_for_one", "a", "b", "c", log=log))
    before = await pids_of(node, sup)
    log.clear()
    await crash_and_wait_restart(node, exits, "b")
    await until(lambda: len(log) == 4)
    assert log == [("stop", "b"), ("stop", "c"), ("start", "b"), ("start", "c")]
    after = await pids_of(node, sup)
    assert after["a"] == before["a"] and after["b"] != before["b"] and after["c"] != before["c"]


async def test_rest_for_one_retries_from_the_child_that_failed_to_start(node, exits):
    # OTP's {try_again, FailedId}: a crashes, a and b restart, c fails to start once; the retry
    # restarts from c, so b (which started) is not stopped and started again
    log = []
    fail_once = {"c": 1}

    async def flaky(proc, tag, log):
        if fail_once.get(tag) and len([e for e in log if e == ("start", tag)]) >= 1:
            fail_once[tag] -= 1
            log.append(("fail", tag))
            raise RuntimeError(f"{tag} cannot start now")
        await worker(proc, tag, log)

    sup_spec = SupervisorSpec(strategy="rest_for_one", max_restarts=5, period=5.0, children=[
        ChildSpec(id=t, start=flaky, args=(t, log), restart="permanent", name=t) for t in ("a", "b", "c", "d")])
    sup = await node.start_supervisor(sup_spec)
    before = await pids_of(node, sup)
    log.clear()
    log.extend([("start", t) for t in "abcd"])  # flaky counts earlier starts
    await crash_and_wait_restart(node, exits, "a")
    await until(lambda: ("start", "d") in log[4:])  # d is the last to start again
    events = log[4:]
    assert events.count(("start", "b")) == 1 and events.count(("stop", "b")) == 1
    assert events.count(("fail", "c")) == 1 and events.count(("start", "c")) == 1
    assert events.count(("start", "d")) == 1
    after = await pids_of(node, sup)
    assert all(after[t] not in (None, before[t]) for t in "abcd")


async def test_simple_one_for_one_starts_children_from_the_template_with_extra_args(node, exits):
    log = []

    async def dyn(proc, prefix, suffix):
        log.append(prefix + suffix)
        while True:
            msg = await proc.receive()
            if msg.topic == "crash":
                raise RuntimeError("x")

    sup = await node.start_supervisor(SupervisorSpec(strategy="simple_one_for_one", children=[
        ChildSpec(id="w", start=dyn, args=("job-",), restart="permanent")]))
    assert await Supervisor.which_children(node, sup) == []
    p1 = await Supervisor.start_child(node, sup, "1")
    await Supervisor.start_child(node, sup, "2")
    assert log == ["job-1", "job-2"]
    node.send(p1, "crash")
    await exits.of(p1)
    await until(lambda: len(log) == 3)
    assert log[2] == "job-1"  # restarted with the same extra args
    counts = await Supervisor.count_children(node, sup)
    assert counts == {"specs": 1, "active": 2, "supervisors": 0, "workers": 2}


async def test_simple_one_for_one_stops_all_dynamic_children_on_shutdown(node, exits):
    log = []

    async def dyn(proc, tag):  # start_child args are copied data, so the log is reached by closure
        await worker(proc, tag, log)

    sup = await node.start_supervisor(SupervisorSpec(strategy="simple_one_for_one", children=[
        ChildSpec(id="w", start=dyn, args=(), restart="permanent")]))
    for i in range(5):
        await Supervisor.start_child(node, sup, f"w{i}")
    log.clear()
    node.exit(sup, "shutdown")
    await exits.of(sup)
    assert sorted(log) == sorted(("stop", f"w{i}") for i in range(5))


async def test_start_child_is_refused_for_static_strategies(node):
    sup = await node.start_supervisor(spec("one_for_one", "a", log=[]))
    with pytest.raises(UsageError, match="simple_one_for_one"):
        await Supervisor.start_child(node, sup, "x")


async def test_permanent_child_is_restarted_even_after_a_normal_exit(node, exits):
    sup = await node.start_supervisor(spec("one_for_one", "a", log=[]))
    old = node.whereis("a")
    node.send("a", "stop", "normal")
    await exits.of(old)
    await until(lambda: node.whereis("a") not in (None, old))
    assert node.is_alive(sup)


async def test_transient_child_is_restarted_only_after_an_abnormal_exit(node, exits):
    sup = await node.start_supervisor(spec("one_for_one", "a", log=[], restart="transient"))
    await crash_and_wait_restart(node, exits, "a")
    old = node.whereis("a")
    node.send("a", "stop", "shutdown")  # shutdown counts as normal for transient children
    await exits.of(old)
    assert await pids_of(node, sup) == {"a": None}


async def test_temporary_child_is_never_restarted_and_is_forgotten(node, exits):
    sup = await node.start_supervisor(spec("one_for_one", "a", log=[], restart="temporary"))
    old = node.whereis("a")
    node.send("a", "crash")
    await exits.of(old)
    assert await Supervisor.which_children(node, sup) == []  # the EXIT was queued before this call


async def test_temporary_sibling_is_stopped_not_restarted_under_one_for_all(node, exits):
    log = []
    sup = await node.start_supervisor(SupervisorSpec(strategy="one_for_all", children=[
        ChildSpec(id="p", start=worker, args=("p", log), name="p"),
        ChildSpec(id="t", start=worker, args=("t", log), name="t", restart="temporary")]))
    await crash_and_wait_restart(node, exits, "p")
    assert [c["id"] for c in await Supervisor.which_children(node, sup)] == ["p"]
    assert node.whereis("t") is None


async def test_more_than_max_restarts_within_period_shuts_the_supervisor_down(node, exits):
    log = []
    sup = await node.start_supervisor(spec("one_for_one", "a", "b", log=log, max_restarts=2, period=60))
    await crash_and_wait_restart(node, exits, "a")
    await crash_and_wait_restart(node, exits, "a")
    log.clear()
    last = node.whereis("a")
    node.send("a", "crash")  # the third restart in the period: over the limit
    assert await exits.of(sup) == "shutdown"
    assert ("stop", "b") in log and not node.is_alive(last)
    assert node.whereis("a") is None and node.whereis("b") is None


async def test_restarts_older_than_the_period_do_not_count(node, exits):
    sup = await node.start_supervisor(spec("one_for_one", "a", log=[], max_restarts=1, period=0.05))
    await crash_and_wait_restart(node, exits, "a")
    loop = asyncio.get_running_loop()
    after = loop.time() + 0.06
    await until(lambda: loop.time() > after)  # let the first restart fall out of the window
    await crash_and_wait_restart(node, exits, "a")
    assert node.is_alive(sup)


async def test_zero_intensity_gives_up_on_the_first_crash(node, exits):
    sup = await node.start_supervisor(spec("one_for_one", "a", log=[], max_restarts=0))
    node.send("a", "crash")
    assert await exits.of(sup) == "shutdown"


async def test_exhausted_child_supervisor_escalates_to_its_parent_which_restarts_it(node, exits):
    log = []
    inner = spec("one_for_one", "a", log=log, max_restarts=0)
    sup = await node.start_supervisor(SupervisorSpec(strategy="one_for_one", max_restarts=5, children=[
        ChildSpec(id="inner", start=inner, name="inner")]))
    first_inner = node.whereis("inner")
    node.send("a", "crash")
    assert await exits.of(first_inner) == "shutdown"
    await until(lambda: node.whereis("inner") not in (None, first_inner))
    await until(lambda: node.whereis("a") is not None)
    assert node.is_alive(sup)


async def test_transient_child_supervisor_that_gives_up_is_not_restarted(node, exits):
    inner = spec("one_for_one", "a", log=[], max_restarts=0)
    sup = await node.start_supervisor(SupervisorSpec(children=[
        ChildSpec(id="inner", start=inner, name="inner", restart="transient")]))
    first_inner = node.whereis("inner")
    node.send("a", "crash")
    assert await exits.of(first_inner) == "shutdown"
    assert await pids_of(node, sup) == {"inner": None}


async def test_child_ignoring_shutdown_is_killed_after_its_shutdown_timeout(node, exits):
    async def stubborn(proc):
        while True:
            await proc.receive()  # traps exits and ignores the EXIT from its supervisor

    sup = await node.start_supervisor(SupervisorSpec(children=[
        ChildSpec(id="s", start=stubborn, name="s", trap_exit=True, shutdown=0.01)]))
    child = node.whereis("s")
    node.exit(sup, "shutdown")
    assert await exits.of(child) == "killed"
    assert await exits.of(sup) == "shutdown"


async def test_brutal_kill_child_is_killed_without_a_shutdown_signal(node, exits):
    log = []
    sup = await node.start_supervisor(SupervisorSpec(children=[
        ChildSpec(id="a", start=worker, args=("a", log), name="a", shutdown="brutal_kill")]))
    child = node.whereis("a")
    node.exit(sup, "shutdown")
    assert await exits.of(child) == "killed"


async def test_supervisor_exits_with_its_parents_reason_after_stopping_children(node, exits):
    parent = Probe(node, trap_exit=True)
    log = []
    sup = await parent.proc.start_link(supervisor_body, spec("one_for_one", "a", log=log), trap_exit=True)
    parent.proc.exit(sup, "custom")
    assert (await parent.next()).payload == Exit(pid=sup, reason="custom")
    assert ("stop", "a") in log


async def test_child_failing_to_start_stops_started_children_and_raises_start_error(node, exits):
    log = []

    class Broken(Actor):
        async def on_start(self):
            raise ValueError("bad config")

    bad = SupervisorSpec(children=[
        ChildSpec(id="a", start=worker, args=("a", log), name="a"),
        ChildSpec(id="broken", start=Broken),
        ChildSpec(id="c", start=worker, args=("c", log), name="c")])
    with pytest.raises(StartError, match="child 'broken' failed to start.*ValueError: bad config"):
        await node.start_supervisor(bad)
    assert log == [("start", "a"), ("stop", "a")]
    assert node.processes() == []


async def test_nested_supervisors_stop_depth_first_in_reverse_order(node, exits):
    log = []
    tree = SupervisorSpec(children=[
        ChildSpec(id="x", start=worker, args=("x", log)),
        ChildSpec(id="sub", start=spec("one_for_one", "s1", "s2", log=log)),
        ChildSpec(id="y", start=worker, args=("y", log))])
    sup = await node.start_supervisor(tree)
    assert log == [("start", "x"), ("start", "s1"), ("start", "s2"), ("start", "y")]
    log.clear()
    node.exit(sup, "shutdown")
    await exits.of(sup)
    assert log == [("stop", "y"), ("stop", "s2"), ("stop", "s1"), ("stop", "x")]


async def test_node_stop_shuts_a_supervision_tree_down_in_order(node):
    log = []
    await node.start_supervisor(spec("one_for_one", "a", "b", log=log))
    log.clear()
    await node.stop()
    assert log == [("stop", "b"), ("stop", "a")]


@pytest.mark.parametrize("make, message", [
    (lambda: SupervisorSpec(strategy="one_for_most"), "unknown supervisor strategy 'one_for_most'"),
    (lambda: SupervisorSpec(max_restarts=-1), "max_restarts"),
    (lambda: SupervisorSpec(period=0), "period"),
    (lambda: SupervisorSpec(children=[ChildSpec(id="a", start=worker), ChildSpec(id="a", start=worker)]),
     "duplicate child id 'a'"),
    (lambda: ChildSpec(id="a", start=worker, restart="sometimes"), "child 'a': unknown restart 'sometimes'"),
    (lambda: ChildSpec(id="a", start=worker, shutdown=-1), "child 'a': shutdown"),
    (lambda: ChildSpec(id="a", start=42), "child 'a': start must be"),
    (lambda: SupervisorSpec(strategy="simple_one_for_one"), "exactly one child"),
])
async def test_invalid_spec_is_rejected_before_anything_starts(node, make, message):
    with pytest.raises(InvalidSpec, match=message):
        node.spawn_supervisor(make())
    assert node.processes() == []


async def test_spawn_supervisor_refuses_something_that_is_not_a_spec(node):
    with pytest.raises(InvalidSpec, match="SupervisorSpec"):
        node.spawn_supervisor({"strategy": "one_for_one"})
