"""The registry write guard: ``registry.write`` for each changed id, plus the
no-escalation rules (SPEC §8, issue 7 point 2).

An actor that is not an unrestricted owner may only write entries that carry
at most the permissions it holds itself:

* no ``security.policy`` entry (create, update, delete, or a kind change to/from one);
* an ``agent`` entry (before and after the change) only with policies the
  actor holds, and only delegating to agents whose policies it holds;
* a ``prompt`` only when every agent using it holds no more than the actor;
* code (``function.lua``, ``library.lua``, ``process.lua``, ``workflow.lua``, a Lua
  agent) only with ``modules:`` its policies allow (``lua.module``) and with
  ``run_as_policies`` within what it holds — the code then never runs with more —
  and with ``policies:`` naming only policies it holds;
* an ``llm.model`` with a ``base_url`` only when it may ``http.request`` that host
  (a loopback or private address only by a rule that names it)
  (an API key is never sent to a host the actor could not reach itself);
* a ``process.service`` (started at boot, with no caller) only for a process the
  actor may spawn whose code runs within the actor's policies.

Every refusal is audited (by ``Security.deny``) and raised as ``PermissionDenied``.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence
from urllib.parse import urlparse

from ..registry import Change, Entry
from ..registry import kinds
from .actor import Actor, as_actor
from .engine import POLICIES_FIELD, RUN_AS_FIELD, Security

__all__ = ["RegistryGuard"]


class RegistryGuard:
    """``await guard(actor, changes)``: installed with ``Registry.add_write_guard``."""

    def __init__(self, security: Security) -> None:
        self.security = security

    async def __call__(self, actor: Any, changes: Sequence[Change]) -> None:
        actor = as_actor(actor)
        if actor.unrestricted:
            return  # the owner (CLI user, watcher): the registry audits the write itself
        held = actor.held_policies() or frozenset()
        written = {str(c.id): c.entry for c in changes}
        for change in changes:
            await self._check(actor, held, change, written)

    async def _check(self, actor: Actor, held: frozenset[str], change: Change,
                     written: dict[str, Entry | None]) -> None:
        sec = self.security
        rid = str(change.id)
        entries = [e for e in (change.before, change.entry) if e is not None]

        async def refuse(reason: str, action: str = "registry.write", resource: str = rid) -> None:
            await sec.deny(actor, action, resource, reason, details={"op": change.op, "id": rid})

        decision = sec.check(actor, "registry.write", rid)
        if not decision.allowed:
            await sec.deny(actor, "registry.write", rid, decision.reason, details={"op": change.op, "id": rid},
                           rule=decision.rule)
        if change.id.namespace == "wippy" or change.id.namespace.startswith("wippy."):
            await refuse("the wippy.* namespaces are reserved for built-in entries")
        if any(e.kind == "security.policy" for e in entries):
            await refuse("security.policy entries can only be written by a person (a file or the CLI); "
                         "agents and their code cannot change permissions")
        handlers = [kinds.find(e.kind) for e in entries]
        if any(h is not None and h.owner_only for h in handlers):
            await refuse(f"{change.id} is a kind that runs outside the sandbox (e.g. an mcp.server starts a "
                         "program); only a person (a file or the CLI) can write it")
        for e in entries:
            if e.kind == "agent":
                await self._agent(e, held, refuse, before=e is change.before)
            if e.kind == "prompt":
                await self._prompt(e, held, refuse)
        after = change.entry
        if after is not None and kinds.holds_code(after.kind) and "source" in after.data:
            await self._code(actor, held, after, refuse)
        if after is not None and after.kind == "llm.model" and after.data.get("base_url"):
            url = str(after.data["base_url"])
            why = {"op": change.op, "id": rid, "why": "llm.model base_url"}
            if urlparse(url).hostname:  # a loopback/private address literal needs a rule naming it
                await sec.enforce_url(actor, url, details=why)
            else:
                await sec.enforce(actor, "http.request", url, details=why)
        if after is not None and after.kind == "process.service":
            await self._service(actor, held, after, written, refuse)
        if decision.approval:  # last: a person is asked only about a change that passed every rule
            details = {"op": change.op, "id": rid,  # the exact proposal, as the person sees it
                       "entry": change.entry.to_dict() if change.entry else None,
                       "before": change.before.to_dict() if change.before else None}
            await sec.approve(actor, "registry.write", rid, decision, details=details)

    async def _service(self, actor: Actor, held: frozenset[str], entry: Entry, written: dict[str, Entry | None],
                       refuse: Any) -> None:
        # A service starts at boot with no caller: its process must be code written within the
        # writer's policies, or the writer would start owner-level code with its own arguments.
        [target] = _refs(entry, [entry.data.get("process")]) or [""]
        code = written[target] if target in written else self.security.registry.get(target)
        await self.security.enforce(actor, "process.spawn", target, details={"id": str(entry.id), "why": "service"})
        run_as = code.data.get(RUN_AS_FIELD) if code is not None else None
        if not isinstance(run_as, list) or not set(map(str, run_as)) <= held:
            await refuse(f"service {str(entry.id)!r} would start {target!r} at boot, which does not run within "
                         f"your policies {sorted(held)}; a service you write may only start code you wrote")

    async def _agent(self, entry: Entry, held: frozenset[str], refuse: Any, *, before: bool) -> None:
        extra = sorted(set(_refs(entry, entry.data.get("policies"))) - held)
        if extra:
            if before:
                await refuse(f"agent {str(entry.id)!r} holds policies {extra} that you do not hold; "
                             "you cannot change or delete it")
            await refuse(f"agent {str(entry.id)!r} would hold policies {extra} that you do not hold; "
                         f"an agent you write may only have policies you hold: {sorted(held)}")
        for ref in _refs(entry, [d.get("id") for d in entry.data.get("delegates") or () if isinstance(d, dict)]):
            target = self.security.registry.get(ref)
            if target is None or target.kind != "agent":
                continue
            wider = sorted(set(_refs(target, target.data.get("policies"))) - held)
            if wider:
                await refuse(f"agent {str(entry.id)!r} would delegate to {ref!r}, which holds policies {wider} "
                             "that you do not hold")

    async def _prompt(self, entry: Entry, held: frozenset[str], refuse: Any) -> None:
        rid = str(entry.id)
        for agent in self.security.registry.find(kind="agent"):
            prompt = agent.data.get("prompt")
            if isinstance(prompt, str) and prompt == rid:
                wider = sorted(set(_refs(agent, agent.data.get("policies"))) - held)
                if wider:
                    await refuse(f"prompt {rid!r} is used by agent {str(agent.id)!r}, which holds policies "
                                 f"{wider} that you do not hold")

    async def _code(self, actor: Actor, held: frozenset[str], entry: Entry, refuse: Any) -> None:
        rid = str(entry.id)
        for module in entry.data.get("modules") or ():
            await self.security.enforce(actor, "lua.module", str(module),
                                        details={"id": rid, "why": f"listed in modules: of {rid}"})
        if entry.kind == "agent":
            return  # a Lua agent runs as itself: its policies were checked above
        own = sorted(set(_refs(entry, entry.data.get(POLICIES_FIELD))) - held)
        if own:
            await refuse(f"{POLICIES_FIELD} of {rid!r} names policies {own} that you do not hold; code you "
                         f"write may only be given policies you hold: {sorted(held)}")
        run_as = entry.data.get(RUN_AS_FIELD)
        if not isinstance(run_as, list):
            await refuse(f"code written by {actor.label} must carry {RUN_AS_FIELD} (the writer's policies, "
                         f"at most {sorted(held)}) so it never runs with more than its writer holds")
        wider = sorted(set(map(str, run_as)) - held)
        if wider:
            await refuse(f"{RUN_AS_FIELD} of {rid!r} names policies {wider} that you do not hold")


def _refs(entry: Entry, values: Iterable[Any] | None) -> list[str]:
    """Resolved ids of a list of references (a bare name means the entry's namespace)."""
    out = []
    for value in values or ():
        if isinstance(value, str) and value:
            out.append(value if ":" in value else f"{entry.id.namespace}:{value}")
    return out
