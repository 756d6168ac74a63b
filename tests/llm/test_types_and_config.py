"""Values round-trip through JSON (they are journaled); model entries are checked once, clearly."""

from __future__ import annotations

import json
import pickle

import pytest

from wippy_agents.errors import ConfigError, ProviderError, RateLimited, error_from_dict
from wippy_agents.llm import (Done, Message, ModelConfig, ModelReply, TextDelta, ToolCall, ToolCallDelta, ToolSpec,
                              Usage, event_from_dict)
from wippy_agents.llm.providers._errors import parse_retry_after

REPLY = ModelReply(
    text="Checking.",
    tool_calls=(ToolCall(id="c1", name="weather", arguments={"city": "Lisbon"}),
                ToolCall.parse(id="c2", name="clock", raw_arguments="{nope")),
    usage=Usage(input_tokens=10, output_tokens=4, cost_usd=0.0001), stop_reason="tool_calls", model="gpt-4o")


def through_json(data):
    return json.loads(json.dumps(data))


def test_a_reply_survives_a_json_round_trip():
    assert ModelReply.from_dict(through_json(REPLY.to_dict())) == REPLY


@pytest.mark.parametrize("message", [
    Message.system("Be brief."), Message.user("hi"), REPLY.to_message(),
    Message.tool("c1", '{"temp": 21}', name="weather"),
])
def test_messages_survive_a_json_round_trip(message):
    assert Message.from_dict(through_json(message.to_dict())) == message


@pytest.mark.parametrize("event", [TextDelta(text="He"), ToolCallDelta(index=1, id="c", name="n", arguments="{"),
                                   Done(reply=REPLY)])
def test_stream_events_survive_a_json_round_trip(event):
    assert event_from_dict(through_json(event.to_dict())) == event


def test_tool_specs_and_usage_round_trip_and_usage_adds():
    spec = ToolSpec(name="weather", description="d", input_schema={"type": "object"})
    assert ToolSpec.from_dict(through_json(spec.to_dict())) == spec
    total = Usage(input_tokens=1, output_tokens=2, cost_usd=0.5) + Usage(input_tokens=3, output_tokens=4, cost_usd=1)
    assert (total.total_tokens, total.cost_usd) == (10, 1.5)


@pytest.mark.parametrize("raw, args, error", [
    ('{"a": 1}', {"a": 1}, None),
    ("", {}, None),
    ("[1, 2]", {}, "must be a JSON object, got list"),
    ('{"a": ', {}, "are not valid JSON"),
])
def test_tool_call_arguments_parse_without_raising(raw, args, error):
    call = ToolCall.parse(id="c", name="t", raw_arguments=raw)
    assert call.arguments == args
    assert (call.parse_error is None) if error is None else (error in call.parse_error)


def test_bad_messages_are_refused():
    with pytest.raises(ValueError, match="role must be"):
        Message(role="robot", content="x")
    with pytest.raises(ValueError, match="tool_call_id"):
        Message(role="tool", content="x")


def test_provider_errors_survive_the_journal():
    err = RateLimited("openai model 'm' is rate limited", status=429, retry_after=2.0, retryable=True)
    for back in (error_from_dict(through_json(err.to_dict())), pickle.loads(pickle.dumps(err))):
        assert type(back) is RateLimited and str(back) == str(err) and back.details["retry_after"] == 2.0


def test_retry_after_reads_seconds_milliseconds_and_dates():
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "7"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:05 GMT"}, now=1445412480.0) == 5.0
    assert parse_retry_after({"retry-after": "soon"}) is None and parse_retry_after({}) is None


def test_a_model_entry_becomes_a_config_with_defaults():
    cfg = ModelConfig.from_dict({"provider": "anthropic", "model": "claude-sonnet-5", "context_window": 200000,
                                 "max_output_tokens": 8192, "temperature": 0.2, "price_input_per_million": 3,
                                 "price_output_per_million": 15, "timeout": 30, "max_retries": 5},
                                id="app.models:claude")
    assert (cfg.api_key_env, cfg.context_window, cfg.max_output_tokens, cfg.timeout, cfg.max_retries) == \
        ("ANTHROPIC_API_KEY", 200000, 8192, 30.0, 5)
    assert isinstance(cfg.price_input_per_million, float)


@pytest.mark.parametrize("data, message", [
    ({"provider": "gemini", "model": "x"}, "provider must be one of openai, anthropic, openai_compatible, scripted"),
    ({"provider": "openai"}, "field 'model' is required"),
    ({"provider": "openai", "model": "m", "context_window": "big"}, "field 'context_window' must be a number"),
    ({"provider": "openai", "model": "m", "context_window": 1.5}, "must be a number (whole)"),
    ({"provider": "openai", "model": "m", "max_retries": -1}, "field 'max_retries' must be >= 0"),
    ({"provider": "openai_compatible", "model": "llama3"}, "needs 'base_url'"),
    ({"provider": "openai", "model": "m", "api_key_env": ""}, "must name an environment variable"),
])
def test_bad_model_entries_say_what_and_where(data, message):
    with pytest.raises(ConfigError) as info:
        ModelConfig.from_dict(data, id="app.models:x", where="models.yaml:7")
    assert str(info.value).startswith("models.yaml:7: llm.model 'app.models:x': ")
    assert message in str(info.value)
    assert "\n" not in str(info.value) and info.value.details["entry"] == "app.models:x"


def test_provider_error_is_the_root_of_model_failures():
    assert issubclass(RateLimited, ProviderError)
