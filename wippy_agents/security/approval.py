"""Approvals: what a person is shown for an ``approval: ask`` rule, and the approver seam.

The console sets an approver (``Security.approver = fn``); with none set an
``ask`` rule is a denial (SPEC §8: "with no person, it is denied").
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Protocol, Union

__all__ = ["ApprovalRequest", "Approver", "ask"]


@dataclass(frozen=True, kw_only=True)
class ApprovalRequest:
    """One question to a person: ``actor`` wants ``action`` on ``resource``.

    ``details`` is the exact proposal: for a registry write ``{"op", "id",
    "entry": {id, kind, meta, data}, "before": ...}``; for a call the arguments.
    ``rule`` names the policy rule that asked.
    """

    actor: str
    action: str
    resource: str
    rule: str
    details: Mapping[str, Any] = field(default_factory=dict)


class Approver(Protocol):
    """``approver(request) -> bool`` (sync or async); True approves. It may block while a person decides."""

    def __call__(self, request: ApprovalRequest) -> Union[bool, Awaitable[bool]]: ...


async def ask(approver: Callable[[ApprovalRequest], Any], request: ApprovalRequest) -> bool:
    """Ask ``approver``; only a literal ``True`` approves. The approver's own errors propagate."""
    answer = approver(request)
    if inspect.isawaitable(answer):
        answer = await answer
    return answer is True
