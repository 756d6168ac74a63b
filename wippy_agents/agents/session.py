"""Conversation sessions: a conversation with agents as one durable task (type ``console.session``).

The console only renders them; this is the Python API under it::

    sessions = app.sessions
    session = await sessions.open("app.agents:assistant")
    turn = await session.send("weather in Lisbon?", on_event=print)   # streamed events, then the Turn
    await session.close()                                             # parks it; nothing is lost
    session = await sessions.resume(session.id)                       # later, in another process

The session task waits for messages (durable task signals): ``user`` (one
turn), ``use`` (switch agent), ``model`` (talk to another ``llm.model`` entry
from the next turn on), ``clear`` (forget earlier turns), ``compact`` (the
conversation so far is summarised by the model in a journaled step
``compact:<k>``, whose summary then stands for the older turns), ``detach``.
Each turn runs the agent as a child task ``<session>.<n>`` (its own journal:
model replies, tool results) with the conversation so far as history, and is
recorded as one step ``turn:<n>`` of the session, carrying the turn's whole
message list (every model reply with its tool calls, every tool result, read
back from the child's journal), so the next turn sees what the tools found.
A cancelled turn keeps what finished before the cancel and ends with a note,
so the history never has two user messages in a row nor a call without its
result; only the context builder trims it, one call-and-results group at a time. A session nobody is
attached to parks itself as ``stranded`` (waiting for a person), so idle
sessions are never claimed and run by a node's recovery; ``resume`` takes it
up again and replays the journal. A crash mid-turn resumes that turn.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import TaskCancelled, TaskNotFound, TaskStranded, UsageError, WippyError
from ..llm import Message, ModelReply, TokenCounter, Usage, priced_usage
from ..store.base import StepRecord
from ..tasks import RunInterrupted, TaskContext
from .layers import NodeLayers
from .loop import _content as tool_text
from .service import AGENT_TASK_KIND, AgentService

__all__ = ["SESSION_KIND", "Session", "SessionState", "Sessions", "Turn", "install", "transcript", "turn_task_id"]

log = logging.getLogger(__name__)

SESSION_KIND = "console.session"
TOPIC = "console"
Listener = Callable[[dict[str, Any]], None]


def turn_task_id(session_id: str, n: int) -> str:
    """The id of the agent task that runs turn ``n`` of a session."""
    return f"{session_id}.{n}"


@dataclass(frozen=True, kw_only=True)
class Turn:
    """One finished turn: the person's text, the agent's answer, why it stopped, what it cost."""

    n: int
    agent: str
    prompt: str
    answer: str = ""
    stop_reason: str = "final"  # an AgentResult stop reason, or "error"
    detail: str = ""
    usage: Usage = field(default_factory=Usage)
    model_calls: int = 0
    task_id: str = ""
    model: str = ""  # the llm.model entry set by `/model` for this turn ("" = the agent's own)
    # The turn's messages after the prompt (assistant replies with their tool calls, tool results), as dicts.
    messages: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "agent": self.agent, "prompt": self.prompt, "answer": self.answer,
                "stop_reason": self.stop_reason, "detail": self.detail, "usage": self.usage.to_dict(),
                "model_calls": self.model_calls, "task_id": self.task_id, "messages": list(self.messages),
                "model": self.model}

    def context(self) -> list[dict[str, Any]]:
        """What the agent sees of this turn later: the prompt, every reply and tool result, and for a
        turn that did not finish, a note saying so (never two user messages in a row)."""
        out: list[dict[str, Any]] = [{"role": "user", "content": self.prompt}]
        if self.messages:
            out.extend(self.messages)
        elif self.answer:
            out.append({"role": "assistant", "content": self.answer})
        if self.stop_reason in ("cancelled", "error") or out[-1]["role"] != "assistant" or out[-1].get("tool_calls"):
            why = "the person cancelled it" if self.stop_reason == "cancelled" else (self.detail or self.stop_reason)
            out.append({"role": "assistant", "content": f"[this turn ended before an answer: {why}]"})
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Turn":
        return cls(n=int(data["n"]), agent=str(data.get("agent") or ""), prompt=str(data.get("prompt") or ""),
                   answer=str(data.get("answer") or ""), stop_reason=str(data.get("stop_reason") or "final"),
                   detail=str(data.get("detail") or ""), usage=Usage.from_dict(data.get("usage") or {}),
                   model_calls=int(data.get("model_calls") or 0), task_id=str(data.get("task_id") or ""),
                   messages=tuple(data.get("messages") or ()), model=str(data.get("model") or ""))


def transcript(steps: list[StepRecord]) -> list[dict[str, Any]]:
    """An agent run's messages, rebuilt from its journal: each model reply, then the result of each of
    its tool calls (the journal numbers them in the model's order). A call with no finished result (the
    run was cancelled inside it) gets one saying so, so a call is never left without its result."""
    out: list[dict[str, Any]] = []
    pending: list[Any] = []  # the last reply's calls still waiting for a result

    def close_pending() -> None:
        for call in pending:
            out.append(Message.tool(call.id, "ERROR: not run: the turn was cancelled", name=call.name).to_dict())
        pending.clear()

    for step in sorted(steps, key=lambda s: s.seq):
        if step.status != "ok":
            continue
        if step.name == "model" and isinstance(step.result, dict):
            close_pending()
            reply = ModelReply.from_dict(step.result)
            out.append(reply.to_message().to_dict())
            pending.extend(reply.tool_calls)
        elif step.name.startswith(("tool:", "delegate:")) and pending:
            name = step.name.partition(":")[2]
            call = next((c for c in pending if c.name == name), None)
            if call is not None:
                pending.remove(call)
                out.append(Message.tool(call.id, tool_text(step.result), name=call.name).to_dict())
    for call in pending:  # a final_answer call (tool_choice: required) has no step: it was the answer
        out.append(Message.tool(call.id, "ok" if call.name == "final_answer" else
                                "ERROR: not run: the turn was cancelled", name=call.name).to_dict())
    return out


@dataclass(kw_only=True)
class SessionState:
    """What a session's journal adds up to; the runner and ``resume`` fold it the same way."""

    agent: str
    turns: list[Turn] = field(default_factory=list)
    context_from: int = 0  # turns before this index were cleared (or compacted) from the agent's context
    pending: str | None = None  # a prompt sent whose turn has not finished (a crash mid-turn)
    model: str | None = None  # `/model ID`: the llm.model entry the turns use instead of the agent's own
    summary: list[dict[str, Any]] = field(default_factory=list)  # the compacted history before context_from
    compactions: list[dict[str, Any]] = field(default_factory=list)  # each /compact's record (summary, usage)

    def apply(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "use":
            self.agent = str(message["agent"])
        elif kind == "model":
            self.model = str(message.get("model") or "") or None
        elif kind == "clear":
            self.context_from = len(self.turns)
            self.summary = []
        elif kind == "user":
            self.pending = str(message.get("text") or "")

    def add(self, turn: Turn) -> None:
        self.turns.append(turn)
        self.pending = None

    def compacted(self, record: dict[str, Any]) -> None:
        """A ``/compact`` finished: its history (a summary note, then the kept turns) replaces the context."""
        self.compactions.append(record)
        self.summary = list(record.get("history") or ())
        self.context_from = len(self.turns)

    def model_calls(self, agent: str) -> int:
        """Model calls made by ``agent``'s turns so far (a scripted model answers per call, in order)."""
        return (sum(t.model_calls for t in self.turns if t.agent == agent)
                + sum(int(c.get("model_calls") or 0) for c in self.compactions if c.get("agent") == agent))

    @property
    def usage(self) -> Usage:
        total = Usage()
        for turn in self.turns:
            total = total + turn.usage
        for record in self.compactions:
            total = total + Usage.from_dict(record.get("usage") or {})
        return total

    def history(self) -> list[dict[str, Any]]:
        """The conversation the agent sees (since the last clear), as message dicts."""
        out: list[dict[str, Any]] = list(self.summary)
        for turn in self.turns[self.context_from:]:
            out.extend(turn.context())
        return out

    @classmethod
    def from_journal(cls, agent: str, steps: list[StepRecord]) -> "SessionState":
        state = cls(agent=agent)
        for step in steps:
            if step.status != "ok":
                continue
            if step.name == f"signal:{TOPIC}" and isinstance(step.result, dict):
                state.apply(step.result.get("payload") or {})
            elif step.name.startswith("turn:") and isinstance(step.result, dict):
                state.add(Turn.from_dict(step.result))
            elif step.name.startswith("compact:") and isinstance(step.result, dict):
                state.compacted(step.result)
        return state


class Sessions:
    """The conversation sessions of one node (``app.sessions``); the task type's runner."""

    def __init__(self, app: NodeLayers, agents: AgentService) -> None:
        self.app = app
        self.agents = agents
        self._attached: dict[str, asyncio.Queue[Any]] = {}  # a finished Turn, or a /compact record

    # -- the durable side ---------------------------------------------------------
    async def runner(self, ctx: TaskContext) -> dict[str, Any]:
        """Wait for messages and run turns until nobody is attached (then park as stranded)."""
        sid = ctx.task.id
        state = SessionState(agent=str((ctx.task.input or {}).get("agent") or ""))
        while True:
            # Parking is decided live only and raises before the next journaled call, so replay
            # sees the same sequence of steps whether or not a console was attached back then.
            if not ctx.replaying and sid not in self._attached:
                raise TaskStranded(f"console session {sid!r} is idle; continue it with "
                                   f"`wippy console --resume {sid}`", task_id=sid)
            message = await ctx.receive_signal(TOPIC) or {}
            state.apply(message)
            live = not ctx.replaying
            done: Any
            if message.get("type") == "compact":
                k = len(state.compactions) + 1
                cargs = (sid, k, state.agent, state.model, state.history(), state.model_calls(state.agent))
                done = await ctx.step(f"compact:{k}", lambda: self._compact(*cargs), idempotent=True)
                if not done.get("error"):
                    state.compacted(done)
            elif message.get("type") == "user":
                n = len(state.turns) + 1
                args = (sid, n, state.agent, state.model, str(message.get("text") or ""), state.history(),
                        state.model_calls(state.agent))
                done = Turn.from_dict(await ctx.step(f"turn:{n}", lambda: self._turn(*args), idempotent=True))
                state.add(done)
            else:
                continue
            queue = self._attached.get(sid)
            if live and queue is not None:
                queue.put_nowait(done)

    async def _compact(self, sid: str, k: int, agent: str, model: str | None, history: list[dict[str, Any]],
                       calls: int) -> dict[str, Any]:
        """One ``/compact``: the agent's model summarises the history (a child task ``<session>.c<k>``)."""
        child = f"{sid}.c{k}"
        base = {"k": k, "agent": agent, "task_id": child}
        extra: dict[str, Any] = {"call_index": calls, **({"model": model} if model else {})}
        try:
            done = await self.agents.compact(agent, history, task_id=child, parent_id=sid, extra_input=extra)
        except (asyncio.CancelledError, RunInterrupted):
            raise
        except WippyError as exc:
            return {**base, "error": str(exc)}
        usage, model_calls = await self._metered(child)
        return {**base, **done.to_dict(), "task_id": child, "usage": usage.to_dict(), "model_calls": model_calls}

    async def _turn(self, sid: str, n: int, agent: str, model: str | None, text: str,
                    history: list[dict[str, Any]], calls: int) -> dict[str, Any]:
        service = self.agents
        child = turn_task_id(sid, n)
        base = {"n": n, "agent": agent, "prompt": text, "task_id": child, **({"model": model} if model else {})}
        try:
            service.check_ready(agent)
            task = await self.app.tasks.start(
                AGENT_TASK_KIND, agent, {"prompt": text, "variables": {}, "history": history, "call_index": calls,
                                         **({"model": model} if model else {})},
                task_id=child, parent_id=sid, registry_version=self.app.registry.version)
            if task.status in ("pending", "running") and child not in self.app.tasks.running():
                await self.app.tasks.adopt(child)  # the turn's run was orphaned by a crash: take it over
            result = await service.result(child)
            turn = {**base, "answer": result.answer, "stop_reason": result.stop_reason, "detail": result.detail}
        except (asyncio.CancelledError, RunInterrupted):
            raise
        except WippyError as exc:
            turn = {**base, "stop_reason": "error", "detail": str(exc)}
        usage, model_calls = await self._metered(child)
        try:
            messages = transcript(await self.app.tasks.journal(child))
        except WippyError:
            messages = []
        if turn["stop_reason"] == "cancelled" and (not messages or messages[-1]["role"] == "tool"
                                                   and not messages[-1]["content"].startswith("ERROR: not run")):
            # Cut while the model was answering: that call is in no journal row, but its prompt was sent
            # and is billed; count it (input tokens only, estimated with the model's tokenizer).
            sent = await self._prompt_usage(agent, model, [*history, {"role": "user", "content": text}, *messages])
            usage = usage + sent
            turn["detail"] = (f"{turn.get('detail') or 'cancelled'}; the cut model call's prompt "
                              f"(~{sent.input_tokens} tokens) is counted")
        return {**turn, "usage": usage.to_dict(), "model_calls": model_calls, "messages": messages}

    async def _prompt_usage(self, agent: str, model: str | None, messages: list[dict[str, Any]]) -> Usage:
        try:
            spec = self.agents.spec(agent)
            if model:
                spec = dataclasses.replace(spec, model=model)
            cfg, _ = self.agents.model(spec)
            sent = [Message.system(spec.system_prompt(self.app.registry.snapshot(), {})),
                    *(Message.from_dict(m) for m in messages)]
            return priced_usage(TokenCounter(cfg.model).count_messages(sent), 0, cfg)
        except WippyError:
            return Usage()

    async def _metered(self, task_id: str) -> tuple[Usage, int]:
        """The usage of a turn (its delegates' included) and its number of model calls (also for
        cancelled turns, whose result says nothing)."""
        try:
            return await self.agents.usage(task_id)
        except WippyError:
            return Usage(), 0

    # -- the client side ----------------------------------------------------------
    def default_agent(self) -> str:
        """``app.agents:assistant`` if it exists, else the only agent; raises ``UsageError``."""
        agents = sorted(str(e.id) for e in self.app.registry.find(kind="agent"))
        if "app.agents:assistant" in agents:
            return "app.agents:assistant"
        if len(agents) == 1:
            return agents[0]
        if not agents:
            raise UsageError("this app defines no agent (kind: agent); add one or pass --app DIR")
        raise UsageError(f"several agents, none is app.agents:assistant; name one: {', '.join(agents)}")

    def resolve_agent(self, name: str | None) -> str:
        """An agent id from a full id or a bare name (``coder`` -> the one agent named so); ``UsageError``."""
        if not name:
            return self.default_agent()
        agents = sorted(str(e.id) for e in self.app.registry.find(kind="agent"))
        if name in agents:
            return name
        hits = [a for a in agents if a.rpartition(":")[2] == name]
        if len(hits) == 1:
            return hits[0]
        raise UsageError(f"no agent {name!r}" + (f"; agents: {', '.join(agents)}" if agents else ""))

    async def open(self, agent: str | None = None, *, session_id: str | None = None) -> "Session":
        """Start a new session with ``agent`` (default: ``default_agent()``)."""
        agent_id = self.resolve_agent(agent)
        self.agents.check_ready(agent_id)
        sid = session_id or uuid.uuid4().hex[:12]
        self._attached[sid] = asyncio.Queue()
        try:
            await self.app.tasks.start(SESSION_KIND, agent_id, {"agent": agent_id}, task_id=sid,
                                       registry_version=self.app.registry.version)
        except BaseException:
            self._attached.pop(sid, None)
            raise
        return Session(self, sid, SessionState(agent=agent_id))

    async def resume(self, session_id: str) -> "Session":
        """Take up a parked (or crashed) session here; raises ``TaskNotFound``/``UsageError``."""
        task = await self.app.tasks.get(session_id)
        if task.kind != SESSION_KIND:
            raise UsageError(f"task {session_id!r} is a {task.kind!r} task, not a console session; "
                             f"`wippy tasks show {session_id}` shows it")
        if task.status in ("succeeded", "failed", "cancelled"):
            raise UsageError(f"console session {session_id!r} has ended ({task.status}); start a new one")
        state = SessionState.from_journal(str((task.input or {}).get("agent") or task.target),
                                          await self.app.tasks.journal(session_id))
        self._attached[session_id] = asyncio.Queue()
        try:
            if session_id not in self.app.tasks.running():
                await self.app.tasks.resume(session_id)
        except BaseException:
            self._attached.pop(session_id, None)
            raise
        return Session(self, session_id, state)

    def detach(self, session_id: str) -> None:
        self._attached.pop(session_id, None)

    def next_turn(self, session_id: str) -> asyncio.Queue[Any]:
        return self._attached[session_id]


class Session:
    """A session this process is attached to. ``send`` blocks for one turn; ``cancel`` ends the one in flight."""

    def __init__(self, sessions: Sessions, session_id: str, state: SessionState) -> None:
        self.sessions = sessions
        self.app = sessions.app
        self.id = session_id
        self.state = state
        self._current: str | None = None
        self._tracked: list[str] = []  # the turn's task and its delegates' tasks, for cancel
        self._tools: dict[str, set[str]] = {}  # task id -> ids of its (non-delegate) tool calls in flight
        self._unsubscribe: list[Callable[[], None]] = []

    @property
    def agent(self) -> str:
        return self.state.agent

    async def send(self, text: str, *, on_event: Listener | None = None) -> Turn:
        """Run one turn; ``on_event`` gets the live events of the agent run (and of its delegates, with ``depth``)."""
        if not text.strip():
            raise UsageError("an empty message; type something for the agent")
        n = len(self.state.turns) + 1
        self.state.apply({"type": "user", "text": text})
        return await self._await_turn(turn_task_id(self.id, n), on_event,
                                      signal={"type": "user", "text": text})

    async def finish_pending(self, *, on_event: Listener | None = None) -> Turn | None:
        """After a resume: wait for the turn a crash interrupted (None when there is none)."""
        if self.state.pending is None:
            return None
        return await self._await_turn(turn_task_id(self.id, len(self.state.turns) + 1), on_event, signal=None)

    async def compact(self) -> dict[str, Any]:
        """Summarise the conversation so far (but its last turn) with the agent's model, as a journaled
        step of the session; later turns see the summary instead of the older turns. Returns the record
        (``summary``, ``replaced``, ``usage``); raises ``UsageError`` when it failed."""
        if not self.state.history():
            raise UsageError("nothing to compact yet: the conversation has no turns")
        await self.app.tasks.signal(self.id, TOPIC, {"type": "compact"})
        record = await self._wait_turn()
        if not isinstance(record, dict):
            raise UsageError("the session answered a /compact with a turn; try again")
        if record.get("error"):
            raise UsageError(f"/compact failed: {record['error']}")
        self.state.compacted(record)
        return record

    async def use_model(self, model: str) -> str:
        """Talk to the ``llm.model`` entry ``model`` from the next turn on (recorded in the session)."""
        entry = self.app.registry.snapshot().get(model)
        if entry is None or entry.kind != "llm.model":
            models = sorted(str(e.id) for e in self.app.registry.find(kind="llm.model"))
            raise UsageError(f"no llm.model entry {model!r}" + (f"; models: {', '.join(models)}" if models else ""))
        await self.app.tasks.signal(self.id, TOPIC, {"type": "model", "model": model})
        self.state.apply({"type": "model", "model": model})
        return model

    async def _await_turn(self, child: str, on_event: Listener | None, *, signal: dict[str, Any] | None) -> Turn:
        self._current, self._tracked, self._tools = child, [child], {}
        self._follow(child, 0, on_event)
        try:
            if signal is not None:
                await self.app.tasks.signal(self.id, TOPIC, signal)
            turn = await self._wait_turn()
        finally:
            for unsubscribe in self._unsubscribe:
                unsubscribe()
            self._unsubscribe.clear()
            self._current = None
        self.state.add(turn)
        return turn

    def _follow(self, task_id: str, depth: int, on_event: Listener | None) -> None:
        service = self.sessions.agents

        def listener(event: dict[str, Any]) -> None:
            kind = event.get("type")
            child = event.get("delegate_task") if kind == "tool_start" else None
            if child:
                self._tracked.append(child)
                self._follow(child, depth + 1, on_event)
            elif kind == "tool_start":
                self._tools.setdefault(task_id, set()).add(str(event.get("id")))
            elif kind == "tool_end":
                self._tools.get(task_id, set()).discard(str(event.get("id")))
            if on_event is not None:
                on_event({**event, "task_id": task_id, "depth": depth})

        self._unsubscribe.append(service.subscribe(task_id, listener))

    async def _wait_turn(self) -> Any:
        queue = self.sessions.next_turn(self.id)
        got = asyncio.ensure_future(queue.get())
        ended = asyncio.ensure_future(self.app.tasks.wait(self.id))
        try:
            await asyncio.wait([got, ended], return_when=asyncio.FIRST_COMPLETED)
            if got.done():
                return got.result()
            try:
                ended.result()
            except WippyError as exc:
                raise UsageError(f"console session {self.id!r} stopped: {exc}") from None
            raise UsageError(f"console session {self.id!r} ended")
        finally:
            for fut in (got, ended):
                fut.cancel()
            await asyncio.wait([got, ended])

    async def cancel(self, *, reason: str = "interrupted from the console (Ctrl-C)", bound: float = 5.0) -> bool:
        """Cancel the turn in flight and its delegates; False if there is none.

        The turn ends for the session at once (its task is marked cancelled). A run waiting on its
        model is also killed, so a long stream stops now; a run inside a tool call is left to
        finish that call (it may be writing to the registry or the store) and stops at its next step.
        """
        if self._current is None:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound
        for task_id in list(self._tracked):
            while True:
                try:
                    await self.app.tasks.cancel(task_id, reason=reason)
                    break
                except TaskNotFound:  # the session has not started the turn's task yet
                    if loop.time() >= deadline or self._current is None:
                        break
                    await asyncio.sleep(0.02)
                except UsageError:  # it ended already
                    break
            if not self._tools.get(task_id):  # a stream only notices at its next step: stop it now
                self.app.tasks.kill(task_id)
        return True

    async def use(self, agent: str) -> str:
        """Talk to another agent from the next turn on (recorded in the session); returns its id."""
        agent_id = self.sessions.resolve_agent(agent)
        self.sessions.agents.check_ready(agent_id)
        await self.app.tasks.signal(self.id, TOPIC, {"type": "use", "agent": agent_id})
        self.state.apply({"type": "use", "agent": agent_id})
        return agent_id

    async def clear(self) -> None:
        """The agent forgets the turns so far (they stay in the journal)."""
        await self.app.tasks.signal(self.id, TOPIC, {"type": "clear"})
        self.state.apply({"type": "clear"})

    async def close(self, *, timeout: float = 5.0) -> None:
        """Detach and let the session park itself (stranded: waiting for a person to resume it)."""
        self.sessions.detach(self.id)
        try:
            await self.app.tasks.signal(self.id, TOPIC, {"type": "detach"})
            await self.app.tasks.wait(self.id, timeout=timeout)
        except (TaskStranded, TaskCancelled):
            pass
        except WippyError as exc:  # the engine's close interrupts it anyway; resume still works
            log.info("console session %r did not park cleanly: %s", self.id, exc)


def install(layers: NodeLayers, agents: AgentService) -> Sessions:
    """The node's ``Sessions``: the ``console.session`` task type on the task engine."""
    sessions = Sessions(layers, agents)
    layers.tasks.register_kind(SESSION_KIND, sessions.runner)
    return sessions
