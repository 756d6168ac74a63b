"""Console sessions as durable tasks: turns, history, switching agents, parking, resume, cancel."""

from __future__ import annotations

import asyncio

import pytest

from wippy_agents.app import App
from wippy_agents.agents.session import SESSION_KIND, Turn, turn_task_id

from tests.console.apps import write_app


async def open_app(tmp_path, script, **kw):
    path = write_app(tmp_path / "app", script, **kw)
    return await App.open(path, store=f"sqlite:///{tmp_path / 'state.db'}", claim_interval=0)


async def test_a_session_runs_turns_with_tools_and_keeps_the_conversation(tmp_path):
    script = [
        {"text": "", "tool_calls": [{"name": "weather", "arguments": {"city": "Lisbon"}}]},
        {"text": "Sunny in Lisbon."},
        {"text": "You asked about Lisbon."},
    ]
    app = await open_app(tmp_path, script)
    try:
        session = await app.sessions.open()
        events: list[dict] = []
        turn = await session.send("weather in Lisbon?", on_event=events.append)
        assert turn.answer == "Sunny in Lisbon." and turn.stop_reason == "final"
        ends = [e for e in events if e["type"] == "tool_end"]
        assert ends and ends[0]["result"] == {"city": "Lisbon", "sky": "sunny", "celsius": 21}
        assert turn.model_calls == 2 and turn.usage.total_tokens > 0
        second = await session.send("what did I ask?")
        assert second.answer == "You asked about Lisbon."
        provider = app.agents.provider_for("app.models:m")
        seen = [m.content for m in provider.calls[-1].messages if m.role in ("user", "assistant")]
        assert "weather in Lisbon?" in seen and "Sunny in Lisbon." in seen  # the earlier turn is context
        provider.assert_complete()
        await session.close()
        task = await app.tasks.get(session.id)
        assert task.kind == SESSION_KIND and task.status == "stranded"
    finally:
        await app.close()


async def test_a_parked_session_resumes_in_a_new_app_with_its_turns_and_agent(tmp_path):
    script = [{"text": "one"}, {"text": "two"}]
    app = await open_app(tmp_path, script)
    try:
        session = await app.sessions.open()
        await session.send("first")
        await session.use("coder")
        await session.close()
        sid = session.id
    finally:
        await app.close()
    app = await open_app(tmp_path, script, coder_script=[{"text": "coder answers"}])
    try:
        session = await app.sessions.resume(sid)
        assert [t.answer for t in session.state.turns] == ["one"]
        assert session.agent == "app.agents:coder"
        turn = await session.send("second")
        assert turn.answer == "coder answers" and turn.n == 2
        await session.close()
    finally:
        await app.close()


async def test_cancel_ends_a_streaming_turn_and_the_session_goes_on(tmp_path):
    slow = {"chunks": [f"w{i} " for i in range(200)], "delay": 0.05}
    app = await open_app(tmp_path, [slow, {"text": "after"}])
    try:
        session = await app.sessions.open()
        started = asyncio.Event()

        def on_event(event):
            if event["type"] == "text":
                started.set()

        sending = asyncio.ensure_future(session.send("go", on_event=on_event))
        await asyncio.wait_for(started.wait(), 10)
        assert await session.cancel()
        turn = await asyncio.wait_for(sending, 10)
        assert turn.stop_reason == "cancelled"
        child = await app.tasks.get(turn_task_id(session.id, 1))
        assert child.status == "cancelled"
        # the interrupted call left no journal row: the next turn is answered by the same reply index
        assert turn.model_calls == 0
        # but its prompt was sent: the turn counts it (input tokens, priced), and says so
        assert turn.usage.input_tokens > 0 and turn.usage.output_tokens == 0 and turn.usage.cost_usd > 0
        assert "prompt" in turn.detail
        # an approval its run might still ask for is refused without asking anybody
        from wippy_agents.console.approvals import with_example_results
        from wippy_agents.security import ApprovalRequest

        asked: list = []
        ask = with_example_results(app, lambda request: asked.append(request) or True)
        late = ApprovalRequest(actor=f"agent:app.agents:assistant/{child.id}", action="registry.write",
                               resource="app.review:x", rule="r")
        assert await ask(late) is False and asked == []
        live = ApprovalRequest(actor=f"agent:app.agents:assistant/{session.id}", action="registry.write",
                               resource="app.review:x", rule="r")
        assert await ask(live) is True and asked == [live]
        await session.close()
    finally:
        await app.close()


def test_turn_round_trips_as_json():
    t = Turn(n=1, agent="a:b", prompt="p", answer="x")
    assert Turn.from_dict(t.to_dict()) == t


def test_the_session_api_lives_in_the_agents_layer_and_prints_nothing():
    import wippy_agents.agents.session as session

    assert session.Sessions.__module__ == "wippy_agents.agents.session"
    assert "rich" not in session.__dict__ and "console" not in session.__dict__


async def test_delegation_events_arrive_nested_with_the_child_task(tmp_path):
    script = [
        {"text": "", "tool_calls": [{"name": "ask_coder", "arguments": {"task": "write lua"}}]},
        {"text": "The coder says hi."},
    ]
    app = await open_app(tmp_path, script, coder_script=[{"text": "coder here"}])
    try:
        session = await app.sessions.open()
        events: list[dict] = []
        turn = await session.send("ask the coder", on_event=events.append)
        assert turn.answer == "The coder says hi."
        start = next(e for e in events if e["type"] == "tool_start")
        child = start["delegate_task"]
        assert child and child.startswith(turn_task_id(session.id, 1) + "/")
        nested = [e for e in events if e["task_id"] == child]
        assert nested and all(e["depth"] == 1 for e in nested)
        assert any(e["type"] == "reply" and e["reply"]["text"] == "coder here" for e in nested)
        coder = next(e["reply"]["usage"] for e in nested if e["type"] == "reply")
        own = [e["reply"]["usage"] for e in events if e["type"] == "reply" and e["depth"] == 0]
        total = sum(u["input_tokens"] + u["output_tokens"] for u in [coder, *own])
        assert turn.usage.total_tokens == total  # the delegate's tokens count for the turn
        assert turn.model_calls == 2  # the assistant's own calls (the coder's script is its own)
        await session.close()
    finally:
        await app.close()


async def test_clear_makes_the_agent_forget_earlier_turns(tmp_path):
    app = await open_app(tmp_path, [{"text": "one"}, {"text": "two"}, {"text": "three"}])
    try:
        session = await app.sessions.open()
        await session.send("remember apples")
        await session.clear()
        await session.send("what fruit?")
        provider = app.agents.provider_for("app.models:m")
        contents = [m.content for m in provider.calls[-1].messages]
        assert "what fruit?" in contents and "remember apples" not in contents
        await session.close()
        again = await app.sessions.resume(session.id)  # the clear is in the journal too
        assert again.state.context_from == 1 and len(again.state.turns) == 2
        await again.send("and now?")
        contents = [m.content for m in provider.calls[-1].messages]
        assert "what fruit?" in contents and "remember apples" not in contents
        await again.close()
    finally:
        await app.close()


async def test_example_results_run_the_proposed_code_side_effect_free(tmp_path):
    from wippy_agents.console.approvals import example_results

    app = await open_app(tmp_path, [{"text": "ok"}])
    try:
        source = 'return {handler = function(a) return string.upper(a.text) end}'
        entry = {"id": "app.review:up", "kind": "function.lua", "meta": {"type": "tool"},
                 "data": {"source": source, "method": "handler", "run_as_policies": ["app.security:open"],
                          "examples": [{"input": {"text": "ab"}, "output": "AB"},
                                       {"input": {"text": "cd"}, "output": "nope"},
                                       {"input": {}, "output": "x"}]}}
        rows = await example_results(app, entry)
        assert [r["ok"] for r in rows] == [True, False, False]
        assert rows[1]["got"] == "CD" and "error" in rows[2]
        assert await example_results(app, {**entry, "kind": "prompt"}) == []
    finally:
        await app.close()


def test_a_scripted_delay_must_be_seconds():
    from wippy_agents.errors import ConfigError
    from wippy_agents.llm.config import load_script

    assert load_script([{"chunks": ["a"], "delay": 0.5}])[0]["delay"] == 0.5
    for bad in (-1, "1s", True):
        with pytest.raises(ConfigError, match="reply #1: 'delay' must be seconds >= 0"):
            load_script([{"text": "a", "delay": bad}])


async def test_cancel_inside_a_tool_call_lets_the_call_finish_and_the_turn_ends_at_once(tmp_path):
    from tests.console.apps import create_tool_call

    app = await open_app(tmp_path, [{"text": "", "tool_calls": [create_tool_call("app.review:slug")]},
                                    {"text": "never"}])
    try:
        asked, answer = asyncio.Event(), asyncio.Event()

        async def slow_person(request):  # the tool call waits on a person: it is in flight
            asked.set()
            await answer.wait()
            return False

        app.security.approver = slow_person
        session = await app.sessions.open()
        sending = asyncio.ensure_future(session.send("make a tool"))
        await asyncio.wait_for(asked.wait(), 10)
        await session.cancel()
        turn = await asyncio.wait_for(sending, 10)  # the turn ends for the session at once
        assert turn.stop_reason == "cancelled"
        child = turn_task_id(session.id, 1)
        assert child in app.tasks.running()  # not killed in the middle of its tool call
        answer.set()
        deadline = asyncio.get_running_loop().time() + 10
        while child in app.tasks.running():  # it finishes the call, then stops at its next step
            assert asyncio.get_running_loop().time() < deadline, "the run never stopped"
            await asyncio.sleep(0.02)
        steps = await app.store.journal_load(child)
        assert [s.name for s in steps] == ["model", "tool:create_tool"] and steps[1].status == "ok"
        assert (await app.tasks.get(child)).status == "cancelled"
        await session.close()
    finally:
        await app.close()


async def test_a_later_turn_sees_the_earlier_turns_tool_calls_results_and_interim_text(tmp_path):
    script = [
        {"text": "Let me look.", "tool_calls": [{"name": "weather", "arguments": {"city": "Lisbon"}}]},
        {"text": "Sunny in Lisbon."},
        {"text": "It was 21 degrees."},
    ]
    app = await open_app(tmp_path, script)
    try:
        session = await app.sessions.open()
        first = await session.send("weather in Lisbon?")
        assert [m["role"] for m in first.messages] == ["assistant", "tool", "assistant"]
        await session.send("how warm?")
        provider = app.agents.provider_for("app.models:m")
        sent = provider.calls[-1].messages
        roles = [m.role for m in sent]
        assert roles == ["system", "user", "assistant", "tool", "assistant", "user"], roles
        call = sent[2].tool_calls[0]
        assert sent[2].content == "Let me look." and call.name == "weather" and call.arguments == {"city": "Lisbon"}
        assert sent[3].tool_call_id == call.id and '"celsius": 21' in sent[3].content
        await session.close()
    finally:
        await app.close()
    app = await open_app(tmp_path, script)  # the messages are journaled with the turn: a resume has them too
    try:
        session = await app.sessions.resume(session.id)
        assert [m["role"] for m in session.state.history()] == ["user", "assistant", "tool", "assistant",
                                                                "user", "assistant"]
        await session.close()
    finally:
        await app.close()


async def test_a_cancelled_turn_never_leaves_two_user_messages_in_a_row(tmp_path):
    slow = {"chunks": [f"w{i} " for i in range(200)], "delay": 0.05}
    app = await open_app(tmp_path, [slow, {"text": "after"}])
    try:
        session = await app.sessions.open()
        started = asyncio.Event()
        sending = asyncio.ensure_future(session.send(
            "go", on_event=lambda e: started.set() if e["type"] == "text" else None))
        await asyncio.wait_for(started.wait(), 10)
        await session.cancel()
        assert (await asyncio.wait_for(sending, 10)).stop_reason == "cancelled"
        await session.send("again")
        sent = app.agents.provider_for("app.models:m").calls[-1].messages
        roles = [m.role for m in sent]
        assert roles == ["system", "user", "assistant", "user"], roles
        assert "cancelled" in sent[2].content
        await session.close()
    finally:
        await app.close()


async def test_use_model_switches_the_model_of_later_turns_and_is_journaled(tmp_path):
    app = await open_app(tmp_path, [{"text": "from m"}], coder_script=[{"text": "from c"}])
    try:
        session = await app.sessions.open()
        with pytest.raises(Exception, match="no llm.model entry 'app.models:nope'"):
            await session.use_model("app.models:nope")
        assert await session.use_model("app.models:c") == "app.models:c"
        turn = await session.send("hi")
        assert turn.answer == "from c" and turn.model == "app.models:c"
        assert app.agents.provider_for("app.models:c").calls and not app.agents.provider_for("app.models:m").calls
        await session.close()
        resumed = await app.sessions.resume(session.id)
        assert resumed.state.model == "app.models:c"
        await resumed.close()
    finally:
        await app.close()


async def test_compact_summarises_older_turns_in_a_journaled_step(tmp_path):
    script = [{"text": "Lisbon is sunny."}, {"text": "Porto is rainy."},
              {"text": "The person asked about Lisbon (sunny)."}, {"text": "ok"}]
    app = await open_app(tmp_path, script)
    try:
        session = await app.sessions.open()
        await session.send("weather in Lisbon?")
        await session.send("and Porto?")
        record = await session.compact()
        assert "Lisbon (sunny)" in record["summary"] and record["replaced"] >= 2
        for _ in range(200):  # the step's row is written right after the session answered: bounded wait
            steps = [s.name for s in await app.tasks.journal(session.id)]
            if "compact:1" in steps:
                break
            await asyncio.sleep(0.01)
        assert "compact:1" in steps
        await session.send("thanks")
        sent = app.agents.provider_for("app.models:m").calls[-1].messages
        text = " ".join(m.content for m in sent)
        assert "Lisbon (sunny)" in text and "weather in Lisbon?" not in text and "and Porto?" in text
        assert session.state.usage.total_tokens > sum(t.usage.total_tokens for t in session.state.turns)
    finally:
        await app.close()
