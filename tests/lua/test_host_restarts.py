"""SPEC §4: a process.host restarts nobody unless it opts in (Erlang ``spawn``).

The matrix: restart ``temporary`` (default) / ``transient`` / ``permanent``
against a normal return, a crash and a ``process.terminate``; a crash loop on
a plain host next to a healthy process; the documented supervision pattern
(the parent monitors and restarts its child) runs the handler exactly twice.
"""

from __future__ import annotations

import pytest

from tests.lua.proc_helpers import HOST, close_rig, make_rig, wait_until
from wippy_agents.runtime import Supervisor

# reports "up" each time an incarnation starts, then ends as told by its first message
WORKER = """local c = ...
process.send(c, 'up', process.pid())
local m = process.inbox():receive()
if m:topic() == 'crash' then error('told to crash') end
return 'bye'"""

MATRIX = [
    # restart, how it ends, restarted?
    ("temporary", "return", False), ("temporary", "crash", False), ("temporary", "terminate", False),
    ("transient", "return", False), ("transient", "crash", True), ("transient", "terminate", False),
    ("permanent", "return", True), ("permanent", "crash", True), ("permanent", "terminate", False),
]


@pytest.mark.parametrize("restart,ending,restarted", MATRIX, ids=[f"{r}-{e}" for r, e, _ in MATRIX])
async def test_host_restart_matrix(restart, ending, restarted):
    rig = await make_rig(restart=None if restart == "temporary" else restart)
    try:
        rig.add("app:w", WORKER)
        pid = await rig.spawn("app:w", rig.collector)
        assert (await rig.report())[:2] == ("up", pid)
        if ending == "terminate":
            assert await rig.procs.terminate(pid) is True
        else:
            rig.node.send(pid, "crash" if ending == "crash" else "stop")
        await wait_until(lambda: pid in rig.exits)
        sup = rig.procs.hosts[HOST]
        # a call to the host is answered after it handled the EXIT: its children show the decision
        children = await Supervisor.which_children(rig.node, sup)
        if restarted:
            assert len(children) == 1 and children[0]["pid"] not in (None, pid)
            topic, new_pid, _ = await rig.report()
            assert topic == "up" and new_pid == children[0]["pid"]
        else:
            assert children == []
            assert rig.queued_topics() == []
    finally:
        await close_rig(rig)


async def test_a_crash_loop_on_a_plain_host_harms_no_other_process():
    rig = await make_rig()
    try:
        rig.add("app:healthy", "local c = ...; local m = process.inbox():receive(); process.send(c, 'alive', m:payload())")
        rig.add("app:crasher", "error('crash at once')")
        healthy = await rig.spawn("app:healthy", rig.collector)
        sup = rig.procs.hosts[HOST]
        crashers = [await rig.spawn("app:crasher") for _ in range(30)]  # 3x the default intensity
        await wait_until(lambda: all(p in rig.exits for p in crashers))
        assert rig.procs.hosts[HOST] == sup and rig.node.is_alive(sup)  # the host did not give up
        assert rig.node.is_alive(healthy)
        children = await Supervisor.which_children(rig.node, sup)
        assert [c["pid"] for c in children] == [healthy]  # no crasher restarted, none left behind
        rig.node.send(healthy, "ping", 7)
        assert (await rig.report())[:2] == ("alive", 7)
    finally:
        await close_rig(rig)


async def test_the_parent_restarts_its_child_and_the_handler_runs_twice_not_three_times():
    rig = await make_rig()
    try:
        rig.add("app:child", "local c = ...; process.send(c, 'ran', {}); error('first try fails')")
        rig.add("app:parent", """
          local c = ...
          local pid = process.spawn_monitored('app:child', 'app:processes', c)
          local ev = process.events():receive()
          local again = process.spawn_monitored('app:child', 'app:processes', c)
          local ev2 = process.events():receive()
          process.send(c, 'parent', {first = ev.kind, second = ev2.kind, same = again == pid})
        """)
        await rig.spawn("app:parent", rig.collector)
        topics = [(await rig.report())[0] for _ in range(3)]
        assert sorted(topics) == ["parent", "ran", "ran"]
        sup = rig.procs.hosts[HOST]
        await wait_until(lambda: len([r for r in rig.exits.values() if "first try fails" in str(r)]) == 2)
        assert await Supervisor.which_children(rig.node, sup) == []  # the host restarted neither: no third run
    finally:
        await close_rig(rig)
