"""``context: {strategy: summarise}``: the oldest turns become a summary the model writes, as a journaled
model step; a tool call never leaves without its result. ``AgentService.compact`` does it on demand."""

from __future__ import annotations

from wippy_agents.agents.summary import SUMMARY_SYSTEM
from wippy_agents.llm import Message

from .helpers import app_text, call

BLOB = {"name": "blob", "kind": "function.lua", "meta": {"type": "tool", "description": "n words of text"},
        "source": 'return {handler = function(a) return string.rep("word ", a.n) end}', "idempotent": True,
        "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}


def svc(app):
    return app.agents


def pairs_intact(messages: list[Message]) -> bool:
    """Every tool result follows the assistant message that made its call."""
    open_ids: set[str] = set()
    for m in messages:
        if m.role == "assistant":
            open_ids = {c.id for c in m.tool_calls}
        elif m.role == "tool":
            if m.tool_call_id not in open_ids:
                return False
        else:
            open_ids = set()
    return True


SCRIPT = [*({"tool_calls": [call("blob", n=200 + i)]} for i in range(4)),
          {"text": "The person asked for blobs; four were fetched (200-203 words)."},  # the summary call
          {"text": "done: four blobs"}]


async def test_the_oldest_turns_are_replaced_by_a_journaled_summary(make_app):
    app = await make_app(app_text(SCRIPT, tools=[BLOB], agent={"context": {"strategy": "summarise"}},
                                  model={"context_window": 1000, "max_output_tokens": 100}))
    events: list[dict] = []
    result = await svc(app).run("app.agents:a", "fetch blobs", timeout=30, on_event=events.append)
    calls = svc(app).provider_for("app.models:m").calls
    kinds = ["summary" if c.messages[0].content == SUMMARY_SYSTEM else "turn" for c in calls]
    assert kinds == ["turn"] * 4 + ["summary", "turn"], kinds
    assert (result.answer, result.stop_reason, result.turns) == ("done: four blobs", "final", 5)
    summary_call = calls[4]
    assert summary_call.tools == () and "[agent called blob with" in summary_call.messages[1].content
    last = calls[5].messages
    note = next(m for m in last if m.role == "system" and m.content.startswith("[Summary of the"))
    assert "four were fetched" in note.content
    assert pairs_intact(last) and [m.role for m in last].count("tool") < 4
    assert [e for e in events if e["type"] == "summary"][0]["replaced"] > 0
    steps = [s for s in await app.store.journal_load(result.task_id) if s.name == "model"]
    assert len(steps) == 6 and "summary_of" in steps[4].result
    assert result.usage.total_tokens == sum(s.tokens for s in steps)  # the summary's tokens count too


async def test_with_the_default_strategy_the_oldest_turns_are_dropped(make_app):
    script = [*SCRIPT[:4], SCRIPT[5]]
    app = await make_app(app_text(script, tools=[BLOB], model={"context_window": 1000, "max_output_tokens": 100}))
    result = await svc(app).run("app.agents:a", "fetch blobs", timeout=30)
    calls = svc(app).provider_for("app.models:m").calls
    assert result.answer == "done: four blobs" and all(c.messages[0].content != SUMMARY_SYSTEM for c in calls)
    assert any("earlier messages of this conversation were removed" in m.content for m in calls[-1].messages)


async def test_compact_summarises_a_history_but_its_last_turn(make_app):
    app = await make_app(app_text([{"text": "They asked for the weather in Lisbon: sunny, 21°C."}]))
    history = [
        {"role": "user", "content": "weather in Lisbon?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "echo", "arguments": {"text": "x"}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "echo", "content": "sunny, 21"},
        {"role": "assistant", "content": "Sunny, 21°C."},
        {"role": "user", "content": "and tomorrow?"},
        {"role": "assistant", "content": "I do not know."},
    ]
    done = await svc(app).compact("app.agents:a", history, task_id="compact-1")
    assert done.summary.startswith("They asked") and done.replaced == 4 and done.task_id == "compact-1"
    assert done.history[0]["role"] == "system" and "Summary of the 4 earlier messages" in done.history[0]["content"]
    assert done.history[1:] == history[4:]
    assert done.usage.total_tokens > 0
    steps = await app.store.journal_load("compact-1")
    assert [(s.name, s.status) for s in steps] == [("model", "ok")]
