"""The Anthropic provider under the real ``anthropic`` SDK, HTTP mocked at the transport with respx."""

from __future__ import annotations

import json

import httpx
import pytest

from wippy_agents.errors import MissingApiKey, ProviderError, ProviderTimeout
from wippy_agents.llm import Done, Message, ModelConfig, TextDelta, ToolCallDelta, ToolSpec, make_provider

from .conftest import (ANTHROPIC_URL, SSE_HEADERS, an_end, an_start, an_text_block, an_tool_block,
                       anthropic_sse)

WEATHER = ToolSpec(name="weather", description="Current weather for a city",
                   input_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def cfg(**over) -> ModelConfig:
    data = {"provider": "anthropic", "model": "claude-sonnet-5", "price_input_per_million": 3.0,
            "price_output_per_million": 15.0, "max_retries": 2, **over}
    return ModelConfig.from_dict(data, id="app.models:claude")


def sse(*events) -> httpx.Response:
    return httpx.Response(200, text=anthropic_sse(*events), headers=SSE_HEADERS)


async def test_a_streamed_tool_calling_conversation(router, http, keys, clock):
    route = router.post(ANTHROPIC_URL).mock(side_effect=[
        sse(an_start(30), *an_text_block(0, "Let me ", "check."),
            *an_tool_block(1, "toolu_1", "weather", '{"city"', ': "Lisbon"}'),
            *an_tool_block(2, "toolu_2", "weather", '{"city": "Porto"}'), *an_end("tool_use", 25)),
        sse(an_start(80), *an_text_block(0, "Lisbon 21°C, Porto 18°C."), *an_end("end_turn", 11)),
    ])
    provider = make_provider(cfg(), http_client=http, sleep=clock.sleep)
    history = [Message.system("Be brief."), Message.user("Weather in Lisbon and Porto?")]

    events = [e async for e in provider.stream(history, tools=[WEATHER])]
    assert [type(e) for e in events] == [TextDelta, TextDelta, ToolCallDelta, ToolCallDelta, ToolCallDelta,
                                         ToolCallDelta, ToolCallDelta, Done]
    reply = events[-1].reply
    assert reply.text == "Let me check." and reply.stop_reason == "tool_calls"
    assert [(c.id, c.arguments) for c in reply.tool_calls] == [("toolu_1", {"city": "Lisbon"}),
                                                               ("toolu_2", {"city": "Porto"})]
    assert [e.index for e in events if isinstance(e, ToolCallDelta)] == [0, 0, 0, 1, 1]
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (30, 25)
    assert reply.usage.cost_usd == pytest.approx((30 * 3 + 25 * 15) / 1e6)

    history += [reply.to_message(), Message.tool("toolu_1", "21°C"), Message.tool("toolu_2", "18°C")]
    events = [e async for e in provider.stream(history, tools=[WEATHER])]
    assert events[-1].reply.text == "Lisbon 21°C, Porto 18°C." and events[-1].reply.stop_reason == "stop"

    first = json.loads(route.calls[0].request.content)
    assert first["system"] == "Be brief." and first["stream"] is True and first["max_tokens"] == 4096
    assert first["tools"] == [WEATHER.to_dict()]
    assert first["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Lisbon and Porto?"}]}]
    second = json.loads(route.calls[1].request.content)
    assert second["messages"][1] == {"role": "assistant", "content": [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Lisbon"}},
        {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Porto"}}]}
    # Both results in one user turn: the Messages API wants the roles to alternate.
    assert second["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21°C"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "18°C"}]}
    headers = route.calls[0].request.headers
    sent_key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
    assert sent_key == "sk-test-anthropic"
    assert clock.sleeps == []


async def test_malformed_tool_input_json_is_kept_raw(router, http, keys):
    router.post(ANTHROPIC_URL).mock(return_value=sse(
        an_start(), *an_tool_block(0, "toolu_1", "weather", '{"city": "Lis'), *an_end("tool_use", 5)))
    reply = await make_provider(cfg(), http_client=http).request([Message.user("hi")], tools=[WEATHER])
    (call,) = reply.tool_calls
    assert call.arguments == {} and call.raw_arguments == '{"city": "Lis' and "not valid JSON" in call.parse_error


async def test_overloaded_then_success_honours_retry_after(router, http, keys, clock):
    route = router.post(ANTHROPIC_URL).mock(side_effect=[
        httpx.Response(529, json={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                       headers={"retry-after": "3"}),
        sse(an_start(), *an_text_block(0, "ok"), *an_end("end_turn", 1)),
    ])
    reply = await make_provider(cfg(), http_client=http, sleep=clock.sleep).request([Message.user("hi")])
    assert reply.text == "ok" and clock.sleeps == [3.0] and route.call_count == 2


async def test_server_errors_every_time_give_a_clear_error(router, http, keys, clock):
    route = router.post(ANTHROPIC_URL).mock(return_value=httpx.Response(
        500, json={"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}))
    with pytest.raises(ProviderError, match=r"'app.models:claude'.*HTTP 500.*gave up after 3 attempts"):
        await make_provider(cfg(), http_client=http, sleep=clock.sleep).request([Message.user("hi")])
    assert route.call_count == 3


async def test_a_connection_failure_is_retried_then_reported(router, http, keys, clock):
    router.post(ANTHROPIC_URL).mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(ProviderError, match="cannot reach the provider's API"):
        await make_provider(cfg(max_retries=1), http_client=http, sleep=clock.sleep).request([Message.user("hi")])
    assert len(clock.sleeps) == 1


async def test_a_timeout(router, http, keys, clock):
    router.post(ANTHROPIC_URL).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ProviderTimeout, match="did not answer within 2s"):
        await make_provider(cfg(timeout=2, max_retries=0), http_client=http, sleep=clock.sleep).request(
            [Message.user("hi")])
    assert clock.sleeps == []


def test_a_missing_api_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(MissingApiKey, match=r"^anthropic model 'app.models:claude' \(claude-sonnet-5\) needs an "
                                            r"API key: set the environment variable ANTHROPIC_API_KEY"):
        make_provider(cfg())
