"""``Actor``: who is acting — an agent run, Lua code, the CLI user, the file watcher.

An actor holds policies (``security.policy`` entry ids). The CLI user and the
file watcher are the app's owner: trusted, every action allowed. Code an
agent wrote runs *restricted*: ``limits`` holds the policy sets of the code's
creators, and an action must be allowed by the actor's own policies AND by
every limit set (so a tool never runs with more than its creator held,
whoever calls it). Code whose entry carries ``policies:`` adds that set as
a limit too: an owner calling it is then narrowed like anyone else.

>>> a = Actor.agent("app.agents:assistant", ["app.security:toolsmith"], task_id="t1")
>>> a.label
'agent:app.agents:assistant/t1'
>>> a.restricted(["app.security:reader"]).held_policies()
frozenset()
>>> Actor.owner("cli").held_policies() is None
True
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Literal

__all__ = ["Actor", "ActorKind", "as_actor"]

ActorKind = Literal["agent", "lua", "cli", "watcher", "system"]


@dataclass(frozen=True, kw_only=True)
class Actor:
    """An identity with policies; frozen, copyable, cheap to derive from."""

    id: str
    kind: ActorKind = "agent"
    policies: tuple[str, ...] = ()
    is_owner: bool = False
    task_id: str | None = None
    created_by: str | None = None
    limits: tuple[tuple[str, ...], ...] = ()
    # what each limit is, for messages: "the policies of the code's creator", "the policies: of ns:name"
    limit_sources: tuple[str, ...] = ()
    forbid: tuple[str, ...] = ()  # action globs refused whatever the policies say (dry runs)

    @classmethod
    def agent(cls, agent_id: str, policies: Iterable[str] = (), *, task_id: str | None = None,
              created_by: str | None = None) -> "Actor":
        """The actor of an agent run: exactly the agent entry's policies."""
        return cls(id=f"agent:{agent_id}", kind="agent", policies=tuple(dict.fromkeys(policies)),
                   task_id=task_id, created_by=created_by)

    @classmethod
    def owner(cls, name: str = "cli", *, kind: ActorKind | None = None) -> "Actor":
        """A trusted owner actor (the CLI user, the file watcher, the loader, embedding code)."""
        if kind is None:
            kind = "watcher" if name == "watcher" else "cli" if name == "cli" or name.startswith("cli:") else "system"
        return cls(id=name, kind=kind, is_owner=True)

    @property
    def agent_id(self) -> str | None:
        return self.id[len("agent:"):] if self.kind == "agent" and self.id.startswith("agent:") else None

    @property
    def label(self) -> str:
        """Who, for the audit log and the registry history: ``agent:ns:name/task``."""
        text = f"{self.id}/{self.task_id}" if self.task_id else self.id
        return f"{text} (restricted)" if self.limits and self.is_owner else text

    @property
    def unrestricted(self) -> bool:
        """An owner not narrowed by any code's limits: everything is allowed."""
        return self.is_owner and not self.limits and not self.forbid

    def policy_sets(self) -> list[tuple[str, ...]]:
        """Every set of policies that must allow an action (empty: unrestricted owner)."""
        own = [] if self.is_owner else [self.policies]
        return own + list(self.limits)

    def held_policies(self) -> frozenset[str] | None:
        """Policy ids present in every set (what this actor may hand on); None: all (owner)."""
        sets = self.policy_sets()
        if not sets:
            return None
        held = frozenset(sets[0])
        for s in sets[1:]:
            held &= frozenset(s)
        return held

    def restricted(self, policies: Iterable[str], *, by: str | None = None,
                   source: str = "the policies of the code's creator") -> "Actor":
        """This actor narrowed to ``policies`` too (running code whose creator held them, or code
        whose entry names them in ``policies:``); ``source`` says which, in denial messages."""
        limit = tuple(dict.fromkeys(policies))
        if limit in self.limits:
            return self
        sources = (*self.limit_sources, *([""] * (len(self.limits) - len(self.limit_sources))), source)
        return replace(self, limits=(*self.limits, limit), limit_sources=sources, created_by=by or self.created_by)

    def limit_source(self, index: int) -> str:
        """What limit ``index`` is (for a denial message)."""
        return (self.limit_sources[index] if index < len(self.limit_sources) else "") or \
            "the policies of the code's creator"

    def without(self, actions: Iterable[str]) -> "Actor":
        """This actor with ``actions`` (globs) always refused: e.g. examples run without side effects."""
        return replace(self, forbid=tuple(dict.fromkeys((*self.forbid, *actions))))

    def __str__(self) -> str:
        return self.label


def as_actor(value: Any) -> Actor:
    """Turn what a caller passed into an ``Actor``.

    ``None`` and plain strings come from trusted Python code (the CLI, the
    watcher, the loader, an embedding app) and are owner actors — except a
    string naming an agent (``agent:...``), which holds no policies: an agent
    run that lost its actor must never become an owner.
    """
    if isinstance(value, Actor):
        return value
    if value is None:
        return Actor.owner("system")
    text = str(value)
    if text.startswith("agent:"):
        return Actor(id=text, kind="agent")
    if text.startswith("lua"):
        return Actor(id=text, kind="lua")
    return Actor.owner(text)
