"""Demo stage 1: a supervision tree surviving injected crashes (the bare kernel)."""

from __future__ import annotations

from typing import Any

from ..errors import ProcessDead
from ..runtime import ChildSpec, Node, Process, Supervisor, SupervisorSpec
from .demo import until

__all__ = ["kernel_stage"]


async def _worker(proc: Process, label: str) -> None:
    """Answers ``ping`` calls; ``crash`` makes it raise, as a bug would."""
    while True:
        msg = await proc.receive()
        if msg.topic == "crash":
            raise RuntimeError(f"{label}: injected crash")
        if msg.topic == "ping":
            proc.reply(msg, f"{label} ok")


async def _children(node: Node, sup: str) -> dict[str, Any]:
    return {c["id"]: c["pid"] for c in await Supervisor.which_children(node, sup)}


async def kernel_stage(demo) -> None:
    workers = SupervisorSpec(strategy="one_for_all", max_restarts=2, period=5.0, children=(
        ChildSpec(id="parser", start=_worker, args=("parser",)),
        ChildSpec(id="indexer", start=_worker, args=("indexer",)),
    ))
    root = SupervisorSpec(strategy="one_for_one", max_restarts=5, period=5.0, children=(
        ChildSpec(id="api", start=_worker, args=("api",), name="api"),
        ChildSpec(id="workers", start=workers),
    ))
    async with Node("demo") as node:
        root_pid = await node.start_supervisor(root, name="root")
        top = await _children(node, root_pid)
        sub = top["workers"]
        before = await _children(node, sub)
        demo.say(f"root supervisor {root_pid} (one_for_one) → api {top['api']}, "
                 f"workers {sub} (one_for_all) → parser {before['parser']}, indexer {before['indexer']}")
        await demo.pause()

        demo.say("injecting a crash into [bold]api[/] …")
        node.send("api", "crash")

        async def api_back() -> bool:
            pid = node.whereis("api")
            return pid is not None and pid != top["api"]
        demo.check("api was restarted under its registered name, with a new pid",
                   await until(api_back) and await node.call("api", "ping", timeout=2) == "api ok")
        await demo.pause()

        demo.say("injecting a crash into [bold]parser[/]: one_for_all restarts its sibling too …")
        node.send(before["parser"], "crash")

        async def both_new() -> bool:
            now = await _children(node, sub)
            return all(now[k] not in (None, before[k]) for k in before)
        demo.check("parser and indexer both came back with new pids", await until(both_new))
        await demo.pause()

        demo.say("crashing parser again and again: more than max_restarts=2 in 5 s …")
        for _ in range(5):
            try:
                pid = (await _children(node, sub))["parser"]
            except ProcessDead:
                break  # the workers supervisor has given up
            node.send(pid, "crash")
            await until(lambda: _pid_changed(node, sub, "parser", pid))

        async def escalated() -> bool:
            return (await _children(node, root_pid))["workers"] not in (None, sub)
        demo.check("the workers supervisor gave up and its parent restarted the whole subtree",
                   await until(escalated))
        demo.check("the node and the unrelated api process kept running",
                   await node.call("api", "ping", timeout=2) == "api ok")
    demo.check("the node stopped cleanly, no process left", not node.processes())


async def _pid_changed(node: Node, sup: str, child: str, old: str) -> bool:
    try:
        now = (await _children(node, sup)).get(child)
    except ProcessDead:  # the supervisor itself is being replaced: that counts as changed
        return True
    return now not in (None, old)
