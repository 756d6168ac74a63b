"""The scripted provider: replies in order, one per call; loud past the end; resumable."""

from __future__ import annotations

import pytest

from wippy_agents.errors import ConfigError, RateLimited
from wippy_agents.llm import (Done, Message, ModelConfig, ScriptExhausted, TextDelta, ToolCallDelta, ToolSpec,
                              make_provider)
from wippy_agents.testing import ScriptedModel

SCRIPT = [
    {"text": "Checking.", "tool_calls": [{"name": "weather", "arguments": {"city": "Lisbon"}}]},
    {"text": "It is 21°C.", "chunks": ["It is ", "21°C."]},
    {"text": "Bye."},
]


def history(text: str = "hi") -> list[Message]:
    return [Message.user(text)]


async def test_replies_come_in_order_and_calls_are_recorded():
    model = ScriptedModel(SCRIPT)
    tools = [ToolSpec(name="weather")]
    first = await model.request(history("weather?"), tools=tools)
    assert first.text == "Checking." and first.stop_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in first.tool_calls] == [("call_1_1", "weather", {"city": "Lisbon"})]
    second = await model.request(history())
    third = await model.request(history())
    assert (second.text, third.text) == ("It is 21°C.", "Bye.")
    assert [c.index for c in model.calls] == [0, 1, 2]
    assert model.calls[0].tools == tuple(tools) and model.calls[0].messages[0].content == "weather?"
    model.assert_complete()


async def test_running_past_the_end_is_a_clear_error():
    model = ScriptedModel([{"text": "only one"}])
    await model.request(history())
    with pytest.raises(ScriptExhausted, match=r"has 1 replies but call #2 wants another \(last message: "
                                              r"\{\"role\": \"user\", \"content\": \"again\"\}\)"):
        await model.request(history("again"))


async def test_assert_complete_names_the_unused_replies():
    model = ScriptedModel(SCRIPT)
    await model.request(history())
    with pytest.raises(AssertionError, match=r"used 1 of 3 replies; unused: #2 .*It is 21°C.*#3"):
        model.assert_complete()


async def test_a_resumed_task_continues_from_its_offset():
    resumed = ScriptedModel(SCRIPT, start=2)
    assert (await resumed.request(history())).text == "Bye."
    resumed.assert_complete()

    seeking = ScriptedModel(SCRIPT)
    seeking.seek(1)
    assert (await seeking.request(history())).text == "It is 21°C."
    with pytest.raises(ValueError, match="outside the script of 3 replies"):
        ScriptedModel(SCRIPT, start=4)


async def test_streams_its_chunks_and_tool_calls_then_done():
    model = ScriptedModel(SCRIPT)
    events = [e async for e in model.stream(history())]
    assert [type(e) for e in events] == [TextDelta, ToolCallDelta, Done]
    assert events[1].name == "weather" and events[1].arguments == '{"city": "Lisbon"}'
    events = [e async for e in model.stream(history())]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["It is ", "21°C."]
    assert events[-1].reply.text == "It is 21°C."


async def test_a_script_can_send_malformed_arguments_and_errors():
    model = ScriptedModel([
        {"tool_calls": [{"name": "weather", "arguments": "{city: Lisbon}"}]},
        {"error": {"type": "RateLimited", "message": "slow down"}},
        {"text": "done", "usage": {"input_tokens": 7, "output_tokens": 2}},
    ])
    (call,) = (await model.request(history())).tool_calls
    assert call.arguments == {} and call.raw_arguments == "{city: Lisbon}" and "not valid JSON" in call.parse_error
    with pytest.raises(RateLimited, match="slow down"):
        await model.request(history())
    reply = await model.request(history())
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (7, 2)


async def test_usage_is_counted_and_priced_when_the_script_gives_none():
    cfg = ModelConfig.from_dict({"provider": "scripted", "script": [{"text": "hello world"}],
                                 "price_input_per_million": 1.0, "price_output_per_million": 2.0})
    reply = await make_provider(cfg).request(history())
    assert reply.usage.output_tokens == 2 and reply.usage.input_tokens > 0
    assert reply.usage.cost_usd == pytest.approx((reply.usage.input_tokens * 1 + 2 * 2) / 1e6)


async def test_a_script_file_is_read_relative_to_the_entry_file(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "demo.yaml").write_text(
        "- text: first\n- tool_calls: [{name: clock, arguments: {}}]\n", encoding="utf-8")

    class FakeEntry:  # the fields of a registry Entry that ModelConfig reads
        id = "app.models:demo"
        data = {"provider": "scripted", "script": "file://demo.yaml"}
        file = str(tmp_path / "models" / "models.yaml")
        line = 4

    model = make_provider(ModelConfig.from_entry(FakeEntry()))
    assert (await model.request(history())).text == "first"
    assert (await model.request(history())).tool_calls[0].name == "clock"
    with pytest.raises(ScriptExhausted, match="scripted model 'app.models:demo' has 2 replies"):
        await model.request(history())


@pytest.mark.parametrize("script, message", [
    ({"text": "not a list"}, "needs 'script': a list of replies"),
    (["hello"], "reply #1 must be a mapping"),
    ([{"txt": "typo"}], r"reply #1 has unknown field\(s\) \['txt'\]"),
    ([{"text": "ab", "chunks": ["a", "c"]}], "chunks do not add up"),
    ([{"tool_calls": [{"arguments": {}}]}], "tool call #1 needs a 'name'"),
    ("file://missing.yaml", "cannot read script"),
])
def test_bad_scripts_are_rejected_with_the_entry_and_reply(tmp_path, script, message):
    with pytest.raises(ConfigError, match=message) as info:
        ModelConfig.from_dict({"provider": "scripted", "script": script}, id="app.models:demo",
                              base_dir=tmp_path, where="models.yaml:3")
    assert str(info.value).startswith("models.yaml:3: llm.model 'app.models:demo': ")


async def test_model_entries_loaded_by_the_registry_become_configs(tmp_path):
    """The registry reads `script: file://x.yaml` into text (+ script_path) and names prices input/output_price."""
    from wippy_agents.registry import load_file

    (tmp_path / "demo.yaml").write_text("- text: from the file\n", encoding="utf-8")
    (tmp_path / "models.yaml").write_text(
        "namespace: app.models\n"
        "entries:\n"
        "  - name: demo\n"
        "    kind: llm.model\n"
        "    provider: scripted\n"
        "    script: file://demo.yaml\n"
        "  - name: default\n"
        "    kind: llm.model\n"
        "    provider: openai\n"
        "    model: gpt-4o-mini\n"
        "    input_price: 0.15\n"
        "    output_price: 0.6\n", encoding="utf-8")
    demo, default = load_file(tmp_path / "models.yaml")
    model = make_provider(ModelConfig.from_entry(demo))
    assert model.config.id == "app.models:demo"
    assert (await model.request(history())).text == "from the file"
    cfg = ModelConfig.from_entry(default)
    assert (cfg.price_input_per_million, cfg.price_output_per_million) == (0.15, 0.6)


def test_a_resolved_script_that_is_not_yaml_names_its_file():
    with pytest.raises(ConfigError, match=r"script '/app/demo.yaml' is not valid YAML"):
        ModelConfig.from_dict({"provider": "scripted", "script": "- text: [unclosed",
                               "script_path": "/app/demo.yaml"}, id="app.models:demo")


async def test_inside_tasks_each_task_replays_from_its_own_journal(tmp_path):
    """The replay position is the model's own: it counts the task's journaled steps of the same name,
    so tasks sharing one scripted model do not take each other's replies, and nothing is passed in."""
    from wippy_agents.store import open_store
    from wippy_agents.tasks import TaskEngine

    model = ScriptedModel(SCRIPT)
    store = await open_store(f"sqlite:///{tmp_path / 't.db'}")
    engine = TaskEngine(store, node_name="n", claim_interval=0)

    async def two_calls(ctx):
        texts = []
        for _ in range(2):
            texts.append(await ctx.step("model", lambda: _text(model), idempotent=True))
        return texts

    engine.register_kind("talk", two_calls)
    try:
        first = await engine.start("talk", "t", None, task_id="a")
        second = await engine.start("talk", "t", {"call_index": 1}, task_id="b")  # a conversation's later turn
        assert await engine.wait(first.id, timeout=10) == ["Checking.", "It is 21°C."]
        assert await engine.wait(second.id, timeout=10) == ["It is 21°C.", "Bye."]
    finally:
        await engine.close()
        await store.close()


async def _text(model):
    return (await model.request(history())).text
