"""Policies: rules ``{effect, actions, resources, approval}`` and their evaluation (SPEC §8).

A ``security.policy`` entry holds a list of rules. Actions and resources are
glob patterns (``registry.*``, ``app.generated:*``, ``*.example.com``);
matching is case-sensitive and ``*`` also crosses ``:`` and ``.``.
Evaluation over a set of rules: a matching ``deny`` wins, else a matching
``allow`` allows, else the answer is deny (default deny). An allowed request
needs a person's approval when any matching allow rule says ``approval: ask``
(a narrow "ask" rule is not bypassed by a broad allow).

Some resources must be named explicitly (``explicit=True``: loopback and
private hosts for ``http.request``): only an allow rule that lists the
resource literally counts, never a glob that happens to match it; a deny
glob still wins.

>>> p = Policy.from_data("app.security:reader", {"rules": [
...     {"effect": "allow", "actions": ["registry.read"], "resources": ["app.*"]},
...     {"effect": "deny", "actions": ["*"], "resources": ["app.secret:*"]}]})
>>> evaluate([p], "registry.read", "app.tools:x").allowed
True
>>> evaluate([p], "registry.read", "app.secret:key").allowed
False
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, Literal, Mapping

from ..errors import ValidationError

__all__ = ["ACTIONS", "Rule", "Policy", "Decision", "evaluate", "glob_match"]

# The actions SPEC §8 names; rules may name others (or globs), these are what the node checks.
ACTIONS = (
    "registry.read",
    "registry.write",
    "tool.call",
    "process.spawn",
    "process.send",
    "lua.module",
    "http.request",
)


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    # fnmatch semantics without its case folding on some platforms; '[' is literal
    # (entry ids and hosts never need character classes, and a stray '[' must not crash).
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


def glob_match(value: str, pattern: str) -> bool:
    """True when ``value`` matches the glob ``pattern`` (``*`` any run, ``?`` one character)."""
    if pattern == "*":
        return True
    if "*" not in pattern and "?" not in pattern:
        return value == pattern
    return _compile(pattern).match(value) is not None


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One rule of a policy; ``policy`` names the entry it came from (for messages and audit)."""

    effect: Literal["allow", "deny"]
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    approval: Literal["ask", "none"] = "none"
    policy: str = ""
    index: int = 0

    def matches(self, action: str, resource: str) -> bool:
        return any(glob_match(action, a) for a in self.actions) and any(
            glob_match(resource, r) for r in self.resources
        )

    def names(self, resource: str) -> bool:
        """True when one of the rule's resources is exactly ``resource`` (no glob)."""
        return any(r == resource and "*" not in r and "?" not in r for r in self.resources)

    def describe(self) -> str:
        return f"{self.policy} rule {self.index + 1} ({self.effect} {list(self.actions)} on {list(self.resources)})"


@dataclass(frozen=True, kw_only=True)
class Policy:
    """A ``security.policy`` entry's rules, ready to evaluate."""

    id: str
    rules: tuple[Rule, ...]

    @classmethod
    def from_data(cls, policy_id: str, data: Mapping[str, Any]) -> "Policy":
        """Build from an entry's data; raises ``ValidationError`` naming the policy and rule."""
        raw = data.get("rules")
        if not isinstance(raw, list):
            raise ValidationError(f"policy {policy_id!r}: 'rules' must be a list", id=policy_id)
        rules = []
        for i, r in enumerate(raw):
            where = f"policy {policy_id!r} rule {i + 1}"
            if not isinstance(r, Mapping):
                raise ValidationError(f"{where}: must be a mapping", id=policy_id)
            effect, approval = r.get("effect"), r.get("approval", "none")
            if effect not in ("allow", "deny"):
                raise ValidationError(f"{where}: effect must be allow or deny, got {effect!r}", id=policy_id)
            if approval not in ("ask", "none"):
                raise ValidationError(f"{where}: approval must be ask or none, got {approval!r}", id=policy_id)
            actions = _strings(r.get("actions"), where, "actions")
            resources = _strings(r.get("resources"), where, "resources")
            rules.append(Rule(effect=effect, actions=actions, resources=resources, approval=approval,
                              policy=policy_id, index=i))
        return cls(id=policy_id, rules=tuple(rules))

    @classmethod
    def from_entry(cls, entry: Any) -> "Policy":
        return cls.from_data(str(entry.id), entry.data)


def _strings(value: Any, where: str, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValidationError(f"{where}: {name!r} must be a non-empty list of glob strings")
    return tuple(value)


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The answer for one (action, resource): ``rule`` is the deciding rule (None: no rule matched)."""

    allowed: bool
    approval: bool = False
    rule: Rule | None = None
    reason: str = ""

    def __bool__(self) -> bool:
        return self.allowed


def evaluate(policies: Iterable[Policy], action: str, resource: str, *, explicit: bool = False) -> Decision:
    """Deny wins, then allow (approval if any matching allow asks), else default deny.

    ``explicit``: an allow rule counts only when it names ``resource`` literally.
    """
    allow: Rule | None = None
    ask: Rule | None = None
    glob: Rule | None = None
    for policy in policies:
        for rule in policy.rules:
            if not rule.matches(action, resource):
                continue
            if rule.effect == "deny":
                return Decision(allowed=False, rule=rule, reason=f"denied by {rule.describe()}")
            if explicit and not rule.names(resource):
                glob = glob or rule
                continue
            if rule.approval == "ask":
                ask = ask or rule
            allow = allow or rule
    if allow is None:
        if glob is not None:
            return Decision(allowed=False, reason=f"only a glob allows it ({glob.describe()}); {resource!r} needs "
                            "a rule that names it")
        return Decision(allowed=False, reason="no rule allows it (default deny)")
    if ask is not None:
        return Decision(allowed=True, approval=True, rule=ask, reason=f"needs approval by {ask.describe()}")
    return Decision(allowed=True, rule=allow, reason=f"allowed by {allow.describe()}")
