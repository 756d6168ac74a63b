"""The shipped app: the assistant runs offline out of the box; the package exports what we mean."""

from __future__ import annotations

import json
from pathlib import Path

import wippy_agents.agents as agents
from wippy_agents.app import App
from wippy_agents.console.agent_cmd import AgentPrinter
from wippy_agents.registry import AppSettings, lint

ROOT = Path(__file__).resolve().parents[2]


async def test_the_assistant_counts_words_offline(tmp_path):
    async with await App.open(ROOT, store=f"sqlite:///{tmp_path / 'state.db'}") as app:
        events = []
        result = await app.agents.run("app.agents:assistant", "count words in: a b c",
                                                     on_event=events.append, timeout=30)
        assert result.stop_reason == "final" and result.answer == "word_count found 5 chars, 3 words."
        model = app.agents.provider_for("app.models:default")
        assert model.offline
        tool_result = [m.content for m in model.calls[1].messages if m.role == "tool"]
        assert [json.loads(t) for t in tool_result] == [{"words": 3, "chars": 5}]
        assert model.calls[0].messages[0].content.startswith("You are Wippy")
        assert "".join(e["text"] for e in events if e["type"] == "text").endswith("found 5 chars, 3 words.")


async def test_the_offline_default_holds_a_conversation_of_any_length(tmp_path):
    """Many turns of a conversation (each turn with the earlier ones as history) never end in an error;
    free text gets a one-paragraph answer that lists the tools and how to connect a real model."""
    from wippy_agents.llm.providers.offline import CONNECT_HINT

    async with await App.open(ROOT, store=f"sqlite:///{tmp_path / 'state.db'}") as app:
        service = app.agents
        history: list[dict] = []
        asks = ["hello", "count words in: one two three four", "what can you do?", "thanks!",
                "word count: a b", "tell me a joke", "count the words: x", "bye"] * 2
        for n, text in enumerate(asks):
            task = await app.tasks.start("agent", "app.agents:assistant",
                                         {"prompt": text, "history": history}, task_id=f"conv.{n}")
            result = await service.result(task.id, timeout=30)
            assert result.stop_reason == "final", (text, result.detail)
            if "count" in text:
                assert result.answer.startswith("word_count found ") and " words" in result.answer, result.answer
            elif n == 0:
                assert "word_count" in result.answer and CONNECT_HINT in result.answer
            else:  # the full help is in the conversation already: one line
                assert result.answer.startswith("(offline model)") and "agents/models.yaml" in result.answer
            history += [{"role": "user", "content": text}, {"role": "assistant", "content": result.answer}]
        assert history[3]["content"] == "word_count found 18 chars, 4 words."


async def test_the_default_app_lints_clean():
    problems = [p for p in await lint(AppSettings.load(ROOT)) if "app.agents" in str(p) or "app.models" in str(p)]
    assert problems == []


def test_printer_streams_text_and_does_not_print_the_answer_twice(tmp_path):
    import io

    out, err = io.StringIO(), io.StringIO()
    p = AgentPrinter(out, err)
    p({"type": "text", "text": "Let me look. "})
    p({"type": "reply", "reply": {"text": "Let me look. ", "tool_calls": [{"name": "add", "arguments": {"x": 1}}]}})
    p({"type": "tool_end", "id": "c", "name": "add", "error": "invalid arguments for tool 'add'"})
    p({"type": "text", "text": "It is "})
    p({"type": "text", "text": "2."})
    p({"type": "reply", "reply": {"text": "It is 2.", "tool_calls": []}})
    p.finish("It is 2.")
    assert out.getvalue() == "Let me look. \nIt is 2.\n"
    assert err.getvalue() == '-> add({"x": 1})\n   add failed: invalid arguments for tool \'add\'\n'
    replayed = AgentPrinter(io.StringIO(), io.StringIO())
    replayed.finish("From the journal.")
    assert replayed.out.getvalue() == "From the journal.\n"


