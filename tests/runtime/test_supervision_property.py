"""Property: random crashes injected into a random supervision tree behave exactly as OTP says.

A pure model of the OTP supervisor rules (restart types, strategies, intensity,
escalation to the parent) runs beside the real tree. After every injected event
the test walks the live tree and checks, child by child, that

* what the model says runs, runs — no permanent child is ever lost while the
  intensity allows — and what it says is gone, is gone;
* a child keeps its pid unless the model restarted it (siblings of a
  one_for_one crash are untouched; one_for_all/rest_for_one restart exactly
  their group);
* a supervisor whose intensity is exhausted exits with ``shutdown`` at exactly
  that event, and its parent restarts it or not according to its restart type;
* at the end ``node.stop()`` leaves no process and no task behind.

``period`` is an hour so every restart counts: the window logic has its own tests.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wippy_agents.runtime import ChildSpec, Node, Supervisor, SupervisorSpec

from .helpers import Exits

EVENTS_RUN = [0]
_GEN = itertools.count(1)  # start generations are unique across the whole run


async def target(proc):
    while True:
        msg = await proc.receive()
        if msg.topic == "crash":
            raise RuntimeError("injected crash")
        if msg.topic == "stop":
            proc.stop(msg.payload)


# -- the model ---------------------------------------------------------------------


@dataclass
class MChild:
    id: str
    restart: str
    sup: MSup | None = None  # a nested supervisor
    running: bool = True
    gen: int = 0

    def fresh_start(self) -> None:
        self.running = True
        self.gen = next(_GEN)
        if self.sup is not None:
            self.sup.reset()


@dataclass
class MSup:
    strategy: str
    max_restarts: int
    children: list[MChild]
    template: list[MChild] = field(default_factory=list)
    restarts: int = 0

    def __post_init__(self) -> None:
        self.template = [MChild(c.id, c.restart, c.sup) for c in self.children]

    def reset(self) -> None:
        """A restarted supervisor starts all its spec children afresh, with no restart history."""
        self.children = [MChild(c.id, c.restart, c.sup, True, next(_GEN)) for c in self.template]
        for c in self.children:
            if c.sup is not None:
                c.sup.reset()
        self.restarts = 0

    def child_exited(self, cid: str, abnormal: bool) -> bool:
        """Apply one child exit; True if this supervisor gave up (exits with shutdown)."""
        child = next(c for c in self.children if c.id == cid)
        child.running = False
        if child.restart == "temporary" or (child.restart == "transient" and not abnormal):
            if child.restart == "temporary":
                self.children.remove(child)
            return False
        self.restarts += 1
        if self.restarts > self.max_restarts:
            for c in self.children:
                c.running = False
            return True
        if self.strategy == "one_for_one":
            child.fresh_start()
            return False
        at = self.children.index(child)
        group = self.children if self.strategy == "one_for_all" else self.children[at:]
        for c in list(group):
            if c.restart == "temporary":
                self.children.remove(c)
            else:
                c.fresh_start()
        return False


def spec_of(m: MSup, prefix: str) -> SupervisorSpec:
    children = []
    for c in m.template:
        if c.sup is not None:
            children.append(ChildSpec(id=c.id, start=spec_of(c.sup, f"{prefix}{c.id}/"), restart=c.restart,
                                      name=f"s:{prefix}{c.id}"))
        else:
            children.append(ChildSpec(id=c.id, start=target, restart=c.restart, name=f"w:{prefix}{c.id}",
                                      shutdown=1.0))
    return SupervisorSpec(strategy=m.strategy, max_restarts=m.max_restarts, period=3600, children=children)


# -- hypothesis strategies ------------------------------------------------------------

restarts = st.sampled_from(["permanent", "permanent", "permanent", "transient", "temporary"])
strategies_ = st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"])


@st.composite
def trees(draw):
    inner = None
    if draw(st.booleans()):
        inner_children = [MChild(f"i{i}", draw(restarts)) for i in range(draw(st.integers(1, 3)))]
        inner = MSup(draw(strategies_), draw(st.integers(0, 4)), inner_children)
    children = [MChild(f"c{i}", draw(restarts)) for i in range(draw(st.integers(2, 4)))]
    if inner is not None:
        children.insert(draw(st.integers(0, len(children))), MChild("sub", draw(restarts), inner))
    intensity = draw(st.one_of(st.integers(0, 6), st.integers(60, 150)))  # exhaust early, or run long
    return MSup(draw(strategies_), intensity, children)


events = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["crash", "normal", "shutdown", "kill"])),
                  min_size=60, max_size=150)


# -- the scenario -------------------------------------------------------------------------


def workers(m: MSup, prefix: str = "", chain: tuple = ()) -> list[tuple[str, tuple]]:
    """Running workers as (name, chain of (supervisor model, child id) from root to the worker)."""
    out = []
    for c in m.children:
        if not c.running:
            continue
        link = chain + ((m, c.id),)
        if c.sup is not None:
            out += workers(c.sup, f"{prefix}{c.id}/", link)
        else:
            out.append((f"w:{prefix}{c.id}", link))
    return out


async def check(node: Node, sup_pid: str, m: MSup, seen: dict, prefix: str = "") -> None:
    live = {c["id"]: c["pid"] for c in await Supervisor.which_children(node, sup_pid)}
    assert list(live) == [c.id for c in m.children], f"{prefix or 'root'}: children differ from the model"
    for c in m.children:
        key = prefix + c.id
        pid = live[c.id]
        assert (pid is not None) == c.running, f"{key}: running={pid is not None}, model says {c.running}"
        if pid is None:
            continue
        before = seen.get(key)
        if before is not None:
            gen, old_pid = before
            assert (old_pid == pid) == (gen == c.gen), f"{key}: pid changed={old_pid != pid}, restarted={gen != c.gen}"
        seen[key] = (c.gen, pid)
        if c.sup is not None:
            await check(node, pid, c.sup, seen, key + "/")


async def scenario(model: MSup, evs: list) -> None:
    node = Node("prop")
    exits = Exits(node)
    root = await node.start_supervisor(spec_of(model, ""), name="root")
    seen: dict = {}
    await check(node, root, model, seen)
    root_alive = True
    for pick, kind in evs:
        running = workers(model)
        if not running:
            break
        name, chain = running[pick % len(running)]
        pid = node.whereis(name)
        assert pid is not None, f"{name} should be registered"
        sup_pids = [root] + [node.whereis(f"s:{'/'.join(i for _, i in chain[: k + 1])}") for k in range(len(chain) - 1)]
        if kind == "crash":
            node.send(pid, "crash")
        elif kind == "normal":
            node.send(pid, "stop", "normal")
        else:
            node.exit(pid, kind)
        await exits.of(pid)
        EVENTS_RUN[0] += 1
        # propagate through the model, innermost supervisor first, as escalation does
        abnormal = kind in ("crash", "kill")
        for depth in range(len(chain) - 1, -1, -1):
            msup, cid = chain[depth]
            gave_up = msup.child_exited(cid, abnormal)
            if not gave_up:
                break
            assert await exits.of(sup_pids[depth]) == "shutdown"
            if depth == 0:
                root_alive = False
            abnormal = False  # a supervisor that gives up exits with shutdown
        if not root_alive:
            assert node.whereis("root") is None and node.processes() == []
            break
        await check(node, root, model, seen)
    await node.stop(timeout=2.0)
    assert node.processes() == []
    me = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t is not me] == [], "tasks leaked"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(model=trees(), evs=events)
def test_random_crashes_in_a_supervision_tree_follow_the_otp_rules(model, evs):
    asyncio.run(scenario(model, evs))


def test_the_property_ran_thousands_of_events():
    """Guards the claim in the module docstring (runs after the property in file order)."""
    if EVENTS_RUN[0] == 0:
        pytest.skip("run together with the property test")
    assert EVENTS_RUN[0] >= 2000, EVENTS_RUN[0]
