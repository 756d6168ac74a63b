"""The OpenAI provider under the real ``openai`` SDK, HTTP mocked at the transport with respx."""

from __future__ import annotations

import json

import httpx
import pytest

from wippy_agents.errors import MissingApiKey, ProviderError, ProviderTimeout, RateLimited
from wippy_agents.llm import (Done, Message, ModelConfig, TextDelta, ToolCallDelta, ToolSpec, collect,
                              make_provider)

from .conftest import OPENAI_URL, SSE_HEADERS, oa_delta, oa_usage, openai_sse

WEATHER = ToolSpec(name="weather", description="Current weather for a city",
                   input_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def cfg(**over) -> ModelConfig:
    data = {"provider": "openai", "model": "gpt-4o-mini", "price_input_per_million": 0.15,
            "price_output_per_million": 0.60, "max_retries": 2, **over}
    return ModelConfig.from_dict(data, id="app.models:default")


def sse(body: str, status: int = 200, headers: dict | None = None) -> httpx.Response:
    return httpx.Response(status, text=body, headers={**SSE_HEADERS, **(headers or {})})


TOOL_TURN = openai_sse(
    oa_delta(role="assistant", content="Let me check."),
    oa_delta(tool_calls=[{"index": 0, "id": "call_1", "type": "function",
                          "function": {"name": "weather", "arguments": ""}}]),
    oa_delta(tool_calls=[{"index": 0, "function": {"arguments": '{"city": '}}]),
    oa_delta(tool_calls=[{"index": 0, "function": {"arguments": '"Lisbon"}'}}]),
    oa_delta(finish="tool_calls"),
    oa_usage(40, 12),
)
ANSWER_TURN = openai_sse(oa_delta(role="assistant", content="It is 21°C "), oa_delta(content="in Lisbon."),
                         oa_delta(finish="stop"), oa_usage(70, 9))


async def test_a_streamed_tool_calling_conversation(router, http, keys, clock):
    route = router.post(OPENAI_URL).mock(side_effect=[sse(TOOL_TURN), sse(ANSWER_TURN)])
    provider = make_provider(cfg(), http_client=http, sleep=clock.sleep)
    history = [Message.system("You are helpful."), Message.user("Weather in Lisbon?")]

    events = [e async for e in provider.stream(history, tools=[WEATHER])]
    assert [type(e) for e in events] == [TextDelta, ToolCallDelta, ToolCallDelta, ToolCallDelta, Done]
    reply = events[-1].reply
    assert reply.text == "Let me check."
    assert reply.stop_reason == "tool_calls"
    (call,) = reply.tool_calls
    assert (call.id, call.name, call.arguments, call.parse_error) == ("call_1", "weather", {"city": "Lisbon"}, None)
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (40, 12)
    assert reply.usage.cost_usd == pytest.approx((40 * 0.15 + 12 * 0.60) / 1e6)

    history += [reply.to_message(), Message.tool("call_1", '{"temp_c": 21}', name="weather")]
    events = [e async for e in provider.stream(history, tools=[WEATHER])]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["It is 21°C ", "in Lisbon."]
    assert events[-1].reply.text == "It is 21°C in Lisbon." and events[-1].reply.stop_reason == "stop"

    first = json.loads(route.calls[0].request.content)
    assert first["stream"] is True and first["model"] == "gpt-4o-mini"
    assert first["tools"] == [{"type": "function", "function": {
        "name": "weather", "description": "Current weather for a city", "parameters": WEATHER.input_schema}}]
    second = json.loads(route.calls[1].request.content)
    assert second["messages"][2] == {"role": "assistant", "content": "Let me check.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Lisbon"}'}}]}
    assert second["messages"][3] == {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'}
    assert route.calls[0].request.headers["authorization"] == "Bearer sk-test-openai"
    assert clock.sleeps == []


async def test_malformed_tool_call_json_is_kept_raw_with_a_parse_error(router, http, keys):
    body = openai_sse(
        oa_delta(tool_calls=[{"index": 0, "id": "call_9", "type": "function",
                              "function": {"name": "weather", "arguments": '{"city": Lisbon'}}]),
        oa_delta(finish="tool_calls"), oa_usage(5, 5))
    router.post(OPENAI_URL).mock(return_value=sse(body))
    provider = make_provider(cfg(), http_client=http)
    reply = await provider.request([Message.user("hi")], tools=[WEATHER])
    (call,) = reply.tool_calls
    assert call.arguments == {}
    assert call.raw_arguments == '{"city": Lisbon'
    assert "arguments of tool 'weather' are not valid JSON" in call.parse_error
    # Sent back verbatim next turn, so the model sees what it wrote.
    assert call.arguments_json == '{"city": Lisbon'


async def test_429_with_retry_after_waits_as_told_then_succeeds(router, http, keys, clock):
    route = router.post(OPENAI_URL).mock(side_effect=[
        httpx.Response(429, json={"error": {"message": "Rate limit reached", "type": "requests"}},
                       headers={"retry-after": "7"}),
        sse(ANSWER_TURN),
    ])
    provider = make_provider(cfg(), http_client=http, sleep=clock.sleep)
    reply = await collect(provider.stream([Message.user("hi")]))
    assert reply.text == "It is 21°C in Lisbon."
    assert clock.sleeps == [7.0]
    assert route.call_count == 2


async def test_500_every_time_gives_a_clear_error_after_the_retries(router, http, keys, clock):
    route = router.post(OPENAI_URL).mock(return_value=httpx.Response(
        500, json={"error": {"message": "The server had an error", "type": "server_error"}}))
    provider = make_provider(cfg(max_retries=3), http_client=http, sleep=clock.sleep)
    with pytest.raises(ProviderError) as info:
        await provider.request([Message.user("hi")])
    err = info.value
    assert route.call_count == 4  # 1 + max_retries
    assert len(clock.sleeps) == 3 and clock.sleeps == sorted(clock.sleeps)  # backoff grows
    assert "'app.models:default'" in str(err) and "HTTP 500" in str(err) and "gave up after 4 attempts" in str(err)
    assert err.details["attempts"] == 4 and err.details["status"] == 500
    assert "\n" not in str(err)


async def test_a_timeout_is_a_provider_timeout_after_retries(router, http, keys, clock):
    route = router.post(OPENAI_URL).mock(side_effect=httpx.ReadTimeout("read timed out"))
    provider = make_provider(cfg(timeout=5, max_retries=1), http_client=http, sleep=clock.sleep)
    with pytest.raises(ProviderTimeout) as info:
        await provider.request([Message.user("hi")])
    assert "did not answer within 5s" in str(info.value) and "gave up after 2 attempts" in str(info.value)
    assert route.call_count == 2 and len(clock.sleeps) == 1


async def test_a_bad_request_is_not_retried(router, http, keys, clock):
    route = router.post(OPENAI_URL).mock(return_value=httpx.Response(
        400, json={"error": {"message": "Invalid schema for function 'weather'", "type": "invalid_request_error"}}))
    provider = make_provider(cfg(), http_client=http, sleep=clock.sleep)
    with pytest.raises(ProviderError, match="refused the request with HTTP 400.*Invalid schema"):
        await provider.request([Message.user("hi")])
    assert route.call_count == 1 and clock.sleeps == []


async def test_a_rejected_key_names_the_env_var(router, http, keys):
    router.post(OPENAI_URL).mock(return_value=httpx.Response(
        401, json={"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}))
    provider = make_provider(cfg(), http_client=http)
    with pytest.raises(ProviderError, match="rejected the API key.*OPENAI_API_KEY"):
        await provider.request([Message.user("hi")])


async def test_rate_limit_past_the_retries_is_rate_limited(router, http, keys, clock):
    router.post(OPENAI_URL).mock(return_value=httpx.Response(
        429, json={"error": {"message": "slow down"}}, headers={"retry-after-ms": "1500"}))
    provider = make_provider(cfg(max_retries=2), http_client=http, sleep=clock.sleep)
    with pytest.raises(RateLimited, match="HTTP 429.*retry after 1.5s"):
        await provider.request([Message.user("hi")])
    assert clock.sleeps == [1.5, 1.5]


def test_a_missing_api_key_is_one_line_naming_the_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingApiKey) as info:
        make_provider(cfg())
    assert str(info.value) == ("openai model 'app.models:default' (gpt-4o-mini) needs an API key: "
                               "set the environment variable OPENAI_API_KEY (export OPENAI_API_KEY=...)")


def test_a_custom_key_variable_is_the_one_named(monkeypatch):
    monkeypatch.delenv("MY_TEAM_KEY", raising=False)
    with pytest.raises(MissingApiKey, match="MY_TEAM_KEY"):
        make_provider(cfg(api_key_env="MY_TEAM_KEY"))


async def test_openai_compatible_needs_no_key_and_estimates_missing_usage(router, http, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    route = router.post("http://localhost:11434/v1/chat/completions").mock(return_value=sse(
        openai_sse(oa_delta(content="hello there"), oa_delta(finish="stop"))))
    model = ModelConfig.from_dict({"provider": "openai_compatible", "model": "llama3.2",
                                   "base_url": "http://localhost:11434/v1", "max_output_tokens": 256},
                                  id="app.models:local")
    provider = make_provider(model, http_client=http)
    reply = await provider.request([Message.user("say hello")])
    assert reply.text == "hello there"
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens == 2  # counted with tiktoken
    body = json.loads(route.calls[0].request.content)
    assert body["max_tokens"] == 256 and "max_completion_tokens" not in body


async def test_a_consumer_may_stop_reading_a_stream_early(router, http, keys):
    router.post(OPENAI_URL).mock(return_value=sse(ANSWER_TURN))
    events = make_provider(cfg(), http_client=http).stream([Message.user("hi")])
    first = await anext(events)
    assert first == TextDelta(text="It is 21°C ")
    await events.aclose()  # closes the SDK stream and the response; nothing leaks (warnings are errors)


async def test_providers_close_the_pool_they_own(keys):
    for model in (cfg(), ModelConfig.from_dict({"provider": "anthropic", "model": "claude-sonnet-5"})):
        provider = make_provider(model)
        await provider.aclose()


class BreaksHalfway(httpx.AsyncByteStream):
    """An SSE body that sends its first events and then loses the connection."""

    def __init__(self, first_part: str):
        self.first_part = first_part

    async def __aiter__(self):
        yield self.first_part.encode()
        raise httpx.ReadError("connection reset by peer")


def half_stream() -> httpx.Response:
    first = openai_sse(oa_delta(role="assistant", content="It is 21°C ")).replace("data: [DONE]\n\n", "")
    return httpx.Response(200, headers=SSE_HEADERS, stream=BreaksHalfway(first))


async def test_a_stream_that_broke_after_output_reached_the_user_is_not_retried(router, http, keys, clock):
    route = router.post(OPENAI_URL).mock(side_effect=[half_stream(), sse(ANSWER_TURN)])
    seen = []
    with pytest.raises(ProviderError, match="connection broke mid-reply.*had started streaming, so it was not retried"):
        async for event in make_provider(cfg(), http_client=http, sleep=clock.sleep).stream([Message.user("hi")]):
            seen.append(event)
    assert seen == [TextDelta(text="It is 21°C ")]
    assert route.call_count == 1 and clock.sleeps == []
    await http.post("https://api.openai.com/v1/chat/completions")  # use the second response: all routes called


async def test_a_whole_request_that_broke_mid_body_is_retried(router, http, keys, clock):
    route = router.post(OPENAI_URL).mock(side_effect=[half_stream(), sse(ANSWER_TURN)])
    reply = await make_provider(cfg(), http_client=http, sleep=clock.sleep).request([Message.user("hi")])
    assert reply.text == "It is 21°C in Lisbon." and route.call_count == 2 and len(clock.sleeps) == 1


def test_an_openai_compatible_entry_that_names_a_key_variable_needs_it(monkeypatch):
    monkeypatch.delenv("VLLM_KEY", raising=False)
    with pytest.raises(MissingApiKey, match="set the environment variable VLLM_KEY"):
        make_provider(ModelConfig.from_dict({"provider": "openai_compatible", "model": "qwen",
                                             "api_key_env": "VLLM_KEY", "base_url": "http://127.0.0.1:8000/v1"},
                                            id="app.models:vllm"))


async def test_whole_tool_calls_without_index_or_id_from_a_compatible_server(router, http, monkeypatch):
    router.post("http://127.0.0.1:8080/v1/chat/completions").mock(return_value=sse(openai_sse(
        oa_delta(tool_calls=[{"type": "function", "function": {"name": "clock", "arguments": "{}"}},
                             {"type": "function", "function": {"name": "weather", "arguments": '{"city": "Porto"}'}}]),
        oa_delta(finish="stop"), oa_usage(3, 3))))
    model = ModelConfig.from_dict({"provider": "openai_compatible", "model": "llama", "base_url":
                                   "http://127.0.0.1:8080/v1"})
    reply = await make_provider(model, http_client=http).request([Message.user("time and weather?")])
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("call_0", "clock", {}), ("call_1", "weather", {"city": "Porto"})]
    assert reply.stop_reason == "tool_calls"
