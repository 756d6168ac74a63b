"""``Security``: evaluates an actor's policies against the live registry, asks
approvers, and writes denials and approvals to the audit log.

>>> sec = Security(registry, store)                                     # doctest: +SKIP
>>> sec.check(Actor.agent("app.agents:a", ["app.security:p"]), "tool.call", "app.tools:x").allowed  # doctest: +SKIP
True
>>> await sec.enforce(actor, "registry.write", "app.generated:slugify")  # doctest: +SKIP

Policies are read from the live registry at every check (a policy changed by
a person applies to the very next check). The registry itself audits every
write it applies; this class audits every denial and every approval.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any, Callable, Mapping, NoReturn
from urllib.parse import urlparse

from ..errors import PermissionDenied, ValidationError
from ..store.base import AuditRecord
from ..registry import kinds
from .actor import Actor, as_actor
from .approval import ApprovalRequest, ask
from .network import is_internal, is_ip
from .policy import Decision, Policy, evaluate, glob_match

__all__ = ["Security", "RUN_AS_FIELD", "POLICIES_FIELD"]

log = logging.getLogger(__name__)

# The field of a code entry (function.lua, library.lua, ...) that names the
# policies its creator held: the code never runs with more than those.
RUN_AS_FIELD = "run_as_policies"
# The field of a code entry a person writes to narrow what its code may do (SPEC §8).
POLICIES_FIELD = "policies"

_OWNER = Decision(allowed=True, reason="owner")
_DECISIONS_KEPT = 4096
# A registry write that lost a race is checked again; the person is not asked twice about the very
# same proposal (same actor, action, resource and details) within this many seconds.
APPROVAL_REUSE_SECONDS = 60.0


class Security:
    """Policy checks for one node. ``approver`` is set by the console (None: ``ask`` rules deny).

    ``check`` never blocks; ``enforce`` may block on the approver and on one
    store write (the audit record of a denial or an approval).
    """

    def __init__(self, registry: Any, store: Any = None, *, approver: Callable[[ApprovalRequest], Any] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.store = store
        self.approver = approver
        self._clock = clock
        self._policies: dict[str, tuple[Any, Policy | None]] = {}
        self._approved: dict[str, float] = {}  # digest of an approved request -> until when it stands
        # Decisions of the live snapshot they were made on: a decision is a function of the
        # actor, action, resource and the policy entries, and a changed policy is a new snapshot.
        self._decided: dict[tuple[Actor, str, str, bool], Decision] = {}
        self._decided_on: Any = None

    # -- actors ----------------------------------------------------------------
    def agent_actor(self, *, agent_id: str, policies: Any = (), task_id: str | None = None) -> Actor:
        """The actor of an agent run (the agents layer asks for it at the start of a run).

        A bare policy name means the agent's namespace (SPEC §3), as in the registry's references.
        """
        namespace = agent_id.rpartition(":")[0]
        resolved = [p if ":" in p else f"{namespace}:{p}" for p in map(str, policies or ())]
        return Actor.agent(agent_id, resolved, task_id=task_id)

    def run_as(self, actor: Any, entry: Any) -> Actor:
        """The actor ``entry``'s code runs as: ``actor`` narrowed by the ``run_as_policies`` (what its
        writer held) and the ``policies:`` of the entry and of every library it imports (transitively).

        Every set must allow an action (deny wins), so an owner calling code with ``policies:`` acts
        with those policies only. A bare policy name means the entry's namespace.
        """
        result = as_actor(actor)
        seen: set[str] = set()
        stack = [entry]
        while stack:
            current = stack.pop()
            cid, kind, data = _id_data(current)
            if cid in seen:
                continue
            seen.add(cid)
            namespace = cid.rpartition(":")[0]
            limit = data.get(RUN_AS_FIELD)
            if isinstance(limit, list):
                meta = (current.meta if hasattr(current, "meta") else current.get("meta")) or {}
                created = meta.get("created_by")
                result = result.restricted([str(p) for p in limit], by=created if isinstance(created, str) else None)
            own = data.get(POLICIES_FIELD)
            if isinstance(own, list) and kinds.runs_as_creator(kind):  # an agent's policies are its own
                result = result.restricted([_ref(p, namespace) for p in own],
                                           source=f"the policies: of {cid}")
            for ref in (data.get("imports") or {}).values():
                lib = self.registry.get(_ref(ref, namespace))
                if lib is not None:
                    stack.append(lib)
        return result

    # -- evaluation ------------------------------------------------------------
    def policy(self, policy_id: str) -> Policy | None:
        """The live ``security.policy`` entry as a ``Policy`` (None when missing or malformed)."""
        entry = self.registry.get(policy_id)
        if entry is None or entry.kind != "security.policy":
            return None
        hit = self._policies.get(policy_id)
        if hit is not None and hit[0] is entry:
            return hit[1]
        try:
            compiled: Policy | None = Policy.from_entry(entry)
        except ValidationError as exc:
            log.error("ignoring malformed policy: %s", exc)
            compiled = None
        self._policies[policy_id] = (entry, compiled)
        return compiled

    def check(self, actor: Any, action: str, resource: str, *, explicit: bool = False) -> Decision:
        """Deny wins, default deny; for a restricted actor every policy set must allow.

        ``explicit``: the resource must be named by a rule of every set (a glob does not count,
        nor does an owner's default: an unrestricted owner is denied). Some resources are always
        explicit-only (``explicit_only``): ``http.request`` on a loopback/private address literal.

        Remembered per live registry snapshot, so a tool called every turn is
        evaluated once per registry version; any registry change (a person
        editing a policy) makes the next check evaluate again.
        """
        actor = as_actor(actor)
        explicit = explicit or explicit_only(action, resource)
        snapshot = getattr(self.registry, "snapshot", None)
        live = snapshot() if callable(snapshot) else None
        if live is None:  # nothing to tell a changed registry by: evaluate every time
            return self._decide(actor, action, resource, explicit)
        if live is not self._decided_on:
            self._decided.clear()
            self._decided_on = live
        key = (actor, action, resource, explicit)
        decision = self._decided.get(key)
        if decision is None:
            decision = self._decide(actor, action, resource, explicit)
            if len(self._decided) >= _DECISIONS_KEPT:  # many actors (one per task): start afresh
                self._decided.clear()
            self._decided[key] = decision
        return decision

    def _decide(self, actor: Actor, action: str, resource: str, explicit: bool = False) -> Decision:
        for pattern in actor.forbid:
            if glob_match(action, pattern):
                return Decision(allowed=False, reason=f"{action} is not available here ({actor.label} runs "
                                "without side effects, e.g. while a tool's examples are checked)")
        if actor.unrestricted:
            if explicit:
                return Decision(allowed=False, reason=f"{resource!r} must be named by a policy rule (an owner's "
                                "default does not cover it; give the code policies: with a rule that names it)")
            return _OWNER
        approval: Decision | None = None
        allowed: Decision | None = None
        first_limit = 0 if actor.is_owner else 1
        for i, ids in enumerate(actor.policy_sets()):
            decision = evaluate([p for p in map(self.policy, ids) if p is not None], action, resource,
                                explicit=explicit)
            if not decision.allowed and decision.rule is None and ids and decision.reason.startswith("no rule"):
                decision = Decision(allowed=False, reason=f"no rule of {', '.join(ids)} allows it (default deny; "
                                    "a person can allow it in a security.policy entry)")
            if not decision.allowed:
                if i >= first_limit:
                    return Decision(allowed=False, rule=decision.rule, reason=f"{decision.reason}, within "
                                    f"{actor.limit_source(i - first_limit)} {list(ids)}")
                return decision if ids else Decision(allowed=False, reason="it holds no policies (default deny)")
            allowed = allowed or decision
            if decision.approval:
                approval = approval or decision
        return approval or allowed or _OWNER

    async def enforce(self, actor: Any, action: str, resource: str, *, explicit: bool = False,
                      details: Mapping[str, Any] | None = None) -> Decision:
        """``check``, then ask the approver for ``approval: ask`` rules.

        Raises ``PermissionDenied`` (audited) when denied or rejected; an
        approval or rejection is audited with the request's details.
        """
        actor = as_actor(actor)
        decision = self.check(actor, action, resource, explicit=explicit)
        if not decision.allowed:
            await self.deny(actor, action, resource, decision.reason, details=details, rule=decision.rule)
        if decision.approval:
            await self.approve(actor, action, resource, decision, details=details)
        return decision

    async def enforce_url(self, actor: Any, url: str, *, addresses: Any = (),
                          details: Mapping[str, Any] | None = None) -> Decision:
        """``http.request`` on the URL's host (rules name hosts with globs: ``*.example.com``).

        A host that is, or resolves to (``addresses``, from the caller's DNS lookup), a loopback,
        private or link-local address is an explicit-only resource: only a rule naming the host
        allows it (``check(..., explicit=True)``).
        """
        host = urlparse(url).hostname or ""
        if not host:
            await self.deny(actor, "http.request", url, "not an absolute http(s) URL with a host", details=details)
        found = [str(a) for a in addresses or () if isinstance(a, str) and is_ip(a)]
        internal = [a for a in (*([host] if is_ip(host) else []), *found) if is_internal(a)]
        info = {"url": url, **({"addresses": found} if found else {}), **dict(details or {})}
        if not internal:
            return await self.enforce(actor, "http.request", host, details=info)
        actor = as_actor(actor)
        decision = self.check(actor, "http.request", host, explicit=True)
        if not decision.allowed:
            reason = (f"{host!r} is or resolves to an internal address ({internal[0]}); loopback, private and "
                      f"link-local hosts need a policy rule that names them: {decision.reason}")
            await self.deny(actor, "http.request", host, reason, details=info, rule=decision.rule)
        if decision.approval:
            await self.approve(actor, "http.request", host, decision, details=info)
        return decision

    async def approve(self, actor: Actor, action: str, resource: str, decision: Decision, *,
                      details: Mapping[str, Any] | None = None) -> None:
        """Ask a person (the approver); raises ``PermissionDenied`` with no approver or on a rejection."""
        rule = decision.rule.describe() if decision.rule else ""
        if self.approver is None:
            await self.deny(actor, action, resource, f"it needs a person's approval ({rule}) and no person is "
                            "present to approve it", details=details, rule=decision.rule)
        request = ApprovalRequest(actor=actor.label, action=action, resource=resource, rule=rule,
                                  details=dict(details or {}))
        key = _digest(request)
        if self._approved.get(key, 0.0) > self._clock():
            return  # the same exact request was approved moments ago (a registry write re-checked after a race)
        approved = await ask(self.approver, request)
        if approved:
            self._approved = {k: t for k, t in self._approved.items() if t > self._clock()}
            self._approved[key] = self._clock() + APPROVAL_REUSE_SECONDS
        await self.audit(actor, action, resource, "approved" if approved else "rejected",
                         {"rule": rule, **dict(details or {})})
        if not approved:
            raise PermissionDenied(f"{actor.label} may not {action} {resource!r}: a person rejected it ({rule})",
                                   actor=actor.label, action=action, resource=resource, rejected=True)

    async def deny(self, actor: Any, action: str, resource: str, reason: str, *,
                   details: Mapping[str, Any] | None = None, rule: Any = None) -> NoReturn:
        """Audit a denial and raise ``PermissionDenied`` saying who, what and why."""
        actor = as_actor(actor)
        info = {"reason": reason, **({"rule": rule.describe()} if rule is not None else {}), **dict(details or {})}
        await self.audit(actor, action, resource, "deny", info)
        raise PermissionDenied(f"{actor.label} may not {action} {resource!r}: {reason}",
                               actor=actor.label, action=action, resource=resource, reason=reason)

    async def audit(self, actor: Any, action: str, resource: str, decision: str, details: Mapping[str, Any]) -> None:
        """Append one audit record (skipped when there is no store, e.g. a bare Registry in tests)."""
        if self.store is None:
            return
        record = AuditRecord(at=self._clock(), actor=as_actor(actor).label, action=action, resource=resource,
                             decision=decision, details=_jsonable(dict(details)))  # type: ignore[arg-type]
        await self.store.audit_append([record])


def explicit_only(action: str, resource: str) -> bool:
    """Whether ``resource`` must be named by a rule for ``action`` whatever the caller asked:
    ``http.request`` on a loopback, private or link-local address literal (SPEC §8). A host *name*
    that resolves to such an address is judged by ``Security.enforce_url`` with its addresses."""
    return action == "http.request" and is_ip(resource) and is_internal(resource)


def _digest(request: ApprovalRequest) -> str:
    body = json.dumps([request.actor, request.action, request.resource, _jsonable(dict(request.details))],
                      sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def _id_data(entry: Any) -> tuple[str, str, Mapping[str, Any]]:
    if isinstance(entry, Mapping):
        return str(entry.get("id")), str(entry.get("kind")), entry.get("data") or {}
    return str(entry.id), str(entry.kind), entry.data


def _ref(value: Any, namespace: str) -> str:
    text = str(value)
    return text if ":" in text else f"{namespace}:{text}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
