"""Security (SPEC §8): policies, actors, checks, approvals and the audit trail.

``Security`` evaluates an ``Actor``'s ``security.policy`` entries (deny wins,
default deny), asks an approver for ``approval: ask`` rules and audits every
denial and approval; ``RegistryGuard`` enforces ``registry.write`` and the
no-escalation rules on every registry write; ``LuaGuard`` checks every Lua op
that declares a guard action. ``install(registry, store)`` makes a node's
``Security`` (``App.open`` calls it); ``lua_seams`` gives the Lua host its checks.
"""

from .actor import Actor, ActorKind, as_actor
from .approval import ApprovalRequest, Approver
from .engine import POLICIES_FIELD, RUN_AS_FIELD, Security
from .guard import RegistryGuard
from .install import install, lua_seams
from .lua_guard import LuaGuard
from .network import is_internal
from .policy import ACTIONS, Decision, Policy, Rule, evaluate, glob_match
from .secrets import redact
from .stamp import stamp_change, stamp_entry

__all__ = [
    "ACTIONS",
    "Actor",
    "ActorKind",
    "ApprovalRequest",
    "Approver",
    "Decision",
    "POLICIES_FIELD",
    "LuaGuard",
    "Policy",
    "RUN_AS_FIELD",
    "RegistryGuard",
    "Rule",
    "Security",
    "as_actor",
    "evaluate",
    "glob_match",
    "install",
    "is_internal",
    "lua_seams",
    "redact",
    "stamp_change",
    "stamp_entry",
]
