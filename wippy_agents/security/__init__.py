"""Security (SPEC §8): policies, actors, checks, approvals and the audit trail.

``Security`` evaluates an ``Actor``'s ``security.policy`` entries (deny wins,
default deny), asks an approver for ``approval: ask`` rules and audits every
denial and approval; ``RegistryGuard`` enforces ``registry.write`` and the
no-escalation rules on every registry write. ``wippy_agents.security.wiring``
installs both into an ``App`` (imported by ``app.py``).
"""

from .actor import Actor, ActorKind, as_actor
from .approval import ApprovalRequest, Approver
from .engine import RUN_AS_FIELD, Security
from .guard import CODE_KINDS, RegistryGuard
from .policy import ACTIONS, Decision, Policy, Rule, evaluate, glob_match
from .secrets import redact
from .stamp import stamp_change, stamp_entry

__all__ = [
    "ACTIONS",
    "Actor",
    "ActorKind",
    "ApprovalRequest",
    "Approver",
    "CODE_KINDS",
    "Decision",
    "Policy",
    "RUN_AS_FIELD",
    "RegistryGuard",
    "Rule",
    "Security",
    "as_actor",
    "evaluate",
    "glob_match",
    "redact",
    "stamp_change",
    "stamp_entry",
]
