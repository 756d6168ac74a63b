"""The SDKs retry what fails before a stream starts; the wait, its log line and the Retry-After cap are ours."""

from __future__ import annotations

import logging

import httpx
import pytest

from wippy_agents.errors import ProviderError, RateLimited
from wippy_agents.llm import Message, ModelConfig, make_provider
from wippy_agents.runtime.backoff import backoff_delay, plural, retry_async

from .conftest import ANTHROPIC_URL, OPENAI_URL, SSE_HEADERS, an_end, an_start, an_text_block, anthropic_sse, \
    oa_delta, oa_usage, openai_sse

OK = {"openai": openai_sse(oa_delta(content="ok"), oa_delta(finish="stop"), oa_usage(1, 1)),
      "anthropic": anthropic_sse(an_start(), *an_text_block(0, "ok"), *an_end("end_turn", 1))}
URL = {"openai": OPENAI_URL, "anthropic": ANTHROPIC_URL}


def model(provider: str, **over) -> ModelConfig:
    name = "gpt-4o-mini" if provider == "openai" else "claude-sonnet-5"
    return ModelConfig.from_dict({"provider": provider, "model": name, "max_retries": 2, **over},
                                 id=f"app.models:{provider}")


def limited(seconds: str) -> httpx.Response:
    return httpx.Response(429, json={"error": {"message": "slow down", "type": "rate_limit_error"}},
                          headers={"retry-after": seconds})


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_the_sdk_retries_before_the_stream_with_our_wait_and_log_line(provider, router, http, keys, clock,
                                                                           caplog):
    route = router.post(URL[provider]).mock(side_effect=[limited("7"), httpx.Response(503, json={}),
                                                         httpx.Response(200, text=OK[provider],
                                                                        headers=SSE_HEADERS)])
    with caplog.at_level(logging.INFO):
        reply = await make_provider(model(provider), http_client=http, sleep=clock.sleep).request(
            [Message.user("hi")])
    assert reply.text == "ok" and route.call_count == 3
    assert clock.sleeps[0] == 7.0 and 0.25 <= clock.sleeps[1] <= 1.0  # Retry-After, then our backoff
    lines = [r.getMessage() for r in caplog.records if "retry" in r.getMessage().lower()]
    assert lines == [f"model 'app.models:{provider}': HTTP 429; retry 1/2 in 7.00s",
                     f"model 'app.models:{provider}': HTTP 503; retry 2/2 in {clock.sleeps[1]:.2f}s"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_retry_after_over_the_cap_is_not_waited_for(provider, router, http, keys, clock):
    route = router.post(URL[provider]).mock(return_value=limited("90"))
    with pytest.raises(RateLimited, match=r"HTTP 429.*not waiting 90s; over the 60s limit"):
        await make_provider(model(provider), http_client=http, sleep=clock.sleep).request([Message.user("hi")])
    assert route.call_count == 1 and clock.sleeps == []


async def test_errors_read_as_one_sentence_with_the_right_plural(router, http, keys, clock):
    router.post(OPENAI_URL).mock(return_value=httpx.Response(
        500, json={"error": {"message": "boom", "type": "server_error"}}))
    with pytest.raises(ProviderError) as info:
        await make_provider(model("openai", max_retries=1), http_client=http, sleep=clock.sleep).request(
            [Message.user("hi")])
    text = str(info.value)
    assert "gave up after 2 attempts" in text and "{" not in text and "\n" not in text
    assert plural(1, "attempt") == "1 attempt" and plural(3, "attempt") == "3 attempts"


async def test_retry_async_waits_as_decided_and_reraises_when_told():
    waits, tries = [], []

    async def flaky():
        tries.append(1)
        if len(tries) < 3:
            raise ConnectionError("down")
        return "up"

    async def sleep(s):
        waits.append(s)

    decide = lambda exc, attempt: backoff_delay(attempt, base=1, cap=3, jitter=0)  # noqa: E731
    assert await retry_async(flaky, decide, sleep=sleep) == "up" and waits == [1, 2]
    tries.clear()
    with pytest.raises(ConnectionError):
        await retry_async(flaky, lambda exc, attempt: None, sleep=sleep)
    assert len(tries) == 1


@pytest.mark.parametrize("provider, body, said", [
    ("openai", {"error": {"message": "Invalid schema for function 'weather'", "type": "invalid_request_error"}},
     "Invalid schema for function 'weather'"),
    ("anthropic", {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: too big"}},
     "max_tokens: too big"),
    ("openai", "plain text failure", "plain text failure"),
])
async def test_a_refused_request_says_what_the_server_said_not_a_dict(provider, body, said, router, http, keys):
    response = httpx.Response(400, json=body) if isinstance(body, dict) else httpx.Response(400, text=body)
    router.post(URL[provider]).mock(return_value=response)
    with pytest.raises(ProviderError) as info:
        await make_provider(model(provider), http_client=http).request([Message.user("hi")])
    assert str(info.value) == (f"{provider} model 'app.models:{provider}' ({model(provider).model}) refused the "
                               f"request with HTTP 400: {said}")
