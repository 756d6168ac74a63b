"""Lua agents: ``kind: agent`` with ``source`` drive their own loop through ``llm``, ``funcs`` and ``agent``.

The entry's ``method`` gets ``{prompt = ..., variables = {...}, task_id = ...}``
and returns the answer (a string, or a table with ``answer`` and optionally
``stop_reason``/``detail``), or ``nil, err``. Its model calls, tool calls and
child agents are journaled steps of the agent's task (see ``lua_modules``), so
it resumes like any agent. Its ``llm.generate``/``llm.stream`` calls are held to
the agent's ``max_turns``, ``budget`` and loop detection (``RunLimits``, as in
the turn loop): a call past a limit ends the run with that stop reason and the
last text the model wrote; the usage is the run's. A failed model call ends the
run unjournaled (resumable). Without a ``limits.timeout`` a Lua agent gets 600 s
of wall clock (a Lua function's 30 s is too short for several model calls).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..errors import LuaError
from ..lua import CallContext, drive
from ..tasks import TaskContext
from .limits import RunLimits
from .lua_modules import Abort
from .result import STOP_REASONS, AgentResult
from .spec import AgentSpec

if TYPE_CHECKING:
    from .service import AgentService

__all__ = ["run_lua_agent", "LUA_AGENT_TIMEOUT"]

LUA_AGENT_TIMEOUT = 600.0


async def run_lua_agent(service: "AgentService", ctx: TaskContext, spec: AgentSpec) -> dict[str, Any]:
    """Run the Lua agent ``spec`` for the task of ``ctx``; returns the ``AgentResult`` as data.

    Raises ``LuaError`` for a Lua error or ``nil, err``, ``LuaLimitExceeded``,
    and the task-control errors (cancelled, lease lost, nondeterminism) as they are.
    """
    app = service.app
    entry = app.registry.get(spec.id)
    assert entry is not None  # service.spec found it a moment ago
    data = dict(entry.data)
    limits = dict(data.get("limits") or {})
    limits.setdefault("timeout", LUA_AGENT_TIMEOUT)
    data["limits"] = limits
    actor = service.actor_for(spec, ctx.task)
    host = app.lua
    code = await host.load({"id": spec.id, "kind": "agent", "meta": dict(entry.meta), "data": data}, actor=actor)
    inp = ctx.task.input if isinstance(ctx.task.input, dict) else {"prompt": str(ctx.task.input or "")}
    arg = {"prompt": inp.get("prompt") or "", "variables": inp.get("variables") or {}, "task_id": ctx.task.id}
    run_limits = RunLimits(max_turns=spec.max_turns, budget=spec.budget)
    call_ctx = CallContext(host=host, entry_id=spec.id, actor=actor, state=code.state,
                           extra={"task": ctx, "agent_spec": spec, "limits": run_limits, "children": 0})
    thread, first = code.thread_args(arg)
    deadline = time.monotonic() + code.spec.limits.timeout
    code.state.start(deadline)
    try:
        results = await drive(code.state, thread, first, host.handler_for(call_ctx), deadline=deadline, who=spec.id)
    except Abort as abort:
        if abort.limit is None:
            raise abort.error from None
        last = str(call_ctx.extra.get("last_text") or "") if call_ctx.extra else ""
        return AgentResult(answer=last, stop_reason=abort.limit.reason, agent=spec.id,  # type: ignore[arg-type]
                           detail=abort.limit.detail, task_id=ctx.task.id, turns=run_limits.turns,
                           usage=run_limits.usage).to_dict()
    value = results[0] if results else None
    if value is None and len(results) > 1 and results[1] is not None:
        raise LuaError(f"{spec.id}: {results[1]}", entry=spec.id)
    if isinstance(value, dict):
        reason = value.get("stop_reason") if value.get("stop_reason") in STOP_REASONS else "final"
        answer, detail = str(value.get("answer") or ""), str(value.get("detail") or "the Lua agent returned")
    else:
        reason, answer, detail = "final", "" if value is None else str(value), "the Lua agent returned"
    return AgentResult(answer=answer, stop_reason=reason, agent=spec.id, detail=detail, task_id=ctx.task.id,
                       turns=run_limits.turns, usage=run_limits.usage).to_dict()
