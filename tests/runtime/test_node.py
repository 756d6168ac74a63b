"""Node lifecycle: clean stop, no leaked tasks, introspection."""

from __future__ import annotations

import asyncio

import pytest

from wippy_agents.errors import UsageError
from wippy_agents.runtime import Node

from .helpers import Probe, echo, idle


async def test_stop_shuts_every_process_down_and_leaves_no_task():
    node = Node("s")
    reasons = {}
    node.on_exit(lambda pid, reason: reasons.__setitem__(pid, reason))
    pids = [node.spawn(idle) for _ in range(10)]
    parent = node.spawn(idle)
    child = node.process(parent).spawn_linked(idle)
    await node.stop()
    assert node.processes() == []
    assert all(reasons[p] == "shutdown" for p in pids + [parent, child])
    me = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t is not me] == []


async def test_stop_kills_processes_that_ignore_shutdown():
    node = Node("s")
    reasons = {}
    node.on_exit(lambda pid, reason: reasons.__setitem__(pid, reason))
    stubborn = node.spawn(idle, trap_exit=True)  # traps, never looks at EXIT
    await node.stop(timeout=0.05)
    assert reasons[stubborn] == "killed"


async def test_stop_answers_pending_callers_with_process_dead():
    from wippy_agents.errors import ProcessDead

    node = Node("s")
    pid = node.spawn(idle)
    call = asyncio.ensure_future(node.call(pid, "q", None, timeout=None))
    await asyncio.sleep(0)
    await node.stop()
    with pytest.raises(ProcessDead):
        await call


async def test_stop_is_idempotent_and_spawn_after_stop_is_refused():
    async with Node("s") as node:
        node.spawn(echo)
    await node.stop()
    with pytest.raises(UsageError, match="stopping"):
        node.spawn(echo)


async def test_pids_are_strings_naming_the_node(node):
    pid = node.spawn(idle)
    assert isinstance(pid, str) and pid.startswith("<t.") and pid.endswith(">")
    assert node.pid == "<t.0>"


async def test_processes_lists_live_processes_for_ps(node):
    probe = Probe(node, name="probe")
    child = probe.proc.spawn_linked(idle)
    await asyncio.sleep(0)
    infos = {i.pid: i for i in node.processes()}
    assert infos[probe.pid].name == "probe" and infos[probe.pid].links == (child,)
    assert infos[child].parent == probe.pid and infos[child].body == "idle"


@pytest.mark.parametrize("bad", ["", "a.b", "<x>", 3])
def test_node_name_must_be_plain(bad):
    with pytest.raises(UsageError):
        Node(bad)


async def test_stop_stops_top_level_supervision_trees_in_reverse_start_order():
    from wippy_agents.runtime import ChildSpec, SupervisorSpec

    log = []

    async def worker(proc, tag):
        try:
            await proc.receive("never-sent")
        finally:
            log.append(tag)

    node = Node("s")
    for tree in ("first", "second"):
        await node.start_supervisor(SupervisorSpec(children=[
            ChildSpec(id=f"{tree}.a", start=worker, args=(f"{tree}.a",)),
            ChildSpec(id=f"{tree}.b", start=worker, args=(f"{tree}.b",))]))
    await node.stop()
    assert log == ["second.b", "second.a", "first.b", "first.a"]


async def test_a_trapping_actor_of_a_process_parent_still_stops_on_node_stop():
    from wippy_agents.runtime import Actor

    stopped = []

    class Keeper(Actor):
        async def on_stop(self, reason):
            stopped.append(reason)

    node = Node("s")
    owner = node.spawn(idle)
    node.process(owner).spawn(Keeper, trap_exit=True)  # not linked: the node signals it directly
    await node.stop(timeout=1.0)
    assert stopped == ["shutdown"]
