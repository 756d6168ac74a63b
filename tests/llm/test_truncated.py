"""A reply whose stream ends without the provider's end marker is an error, never an answer (SPEC §6).

Both providers under their real SDKs, both paths: ``stream()`` (the fragment reached the consumer, so
it is not retried) and ``request()`` (a whole reply, retried like a dropped connection).
"""

from __future__ import annotations

import httpx
import pytest

from wippy_agents.errors import ProviderError
from wippy_agents.llm import Message, ModelConfig, TextDelta, make_provider

from .conftest import (ANTHROPIC_URL, OPENAI_URL, SSE_HEADERS, an_end, an_start, an_text_block, anthropic_sse,
                       oa_delta, oa_usage, openai_sse)


def model(provider: str, **over) -> ModelConfig:
    name = "gpt-4o-mini" if provider == "openai" else "claude-sonnet-5"
    return ModelConfig.from_dict({"provider": provider, "model": name, "max_retries": 2, **over},
                                 id=f"app.models:{provider}")


def body(text: str) -> httpx.Response:
    return httpx.Response(200, text=text, headers=SSE_HEADERS)


# Each provider: a whole reply, the same reply cut before its end marker, and one cut before any output.
OPENAI_WHOLE = openai_sse(oa_delta(role="assistant", content="It is 21°C "), oa_delta(content="in Lisbon."),
                          oa_delta(finish="stop"), oa_usage(7, 5))
OPENAI_CUT = openai_sse(oa_delta(role="assistant", content="It is 21°C ")).replace("data: [DONE]\n\n", "")
OPENAI_EMPTY = ""
ANTHROPIC_WHOLE = anthropic_sse(an_start(7), *an_text_block(0, "It is 21°C ", "in Lisbon."), *an_end("end_turn", 5))
ANTHROPIC_CUT = anthropic_sse(an_start(7), *an_text_block(0, "It is 21°C ")[:2])
ANTHROPIC_EMPTY = anthropic_sse(an_start(7))

CASES = {
    "openai": (OPENAI_URL, OPENAI_WHOLE, OPENAI_CUT, OPENAI_EMPTY, "a finish_reason"),
    "anthropic": (ANTHROPIC_URL, ANTHROPIC_WHOLE, ANTHROPIC_CUT, ANTHROPIC_EMPTY, "message_stop"),
}


@pytest.mark.parametrize("provider", sorted(CASES))
async def test_a_streamed_fragment_is_an_error_not_a_final_answer(provider, router, http, keys, clock):
    url, _, cut, _, marker = CASES[provider]
    router.post(url).mock(return_value=body(cut))
    seen = []
    with pytest.raises(ProviderError, match=f"ended after part of the reply without {marker}.*not retried") as err:
        async for event in make_provider(model(provider), http_client=http, sleep=clock.sleep).stream(
                [Message.user("weather?")]):
            seen.append(event)
    assert seen == [TextDelta(text="It is 21°C ")]  # the fragment streamed, but no Done(reply) came
    assert err.value.details["truncated"] is True and err.value.details["partial"] is True
    assert clock.sleeps == []


@pytest.mark.parametrize("provider", sorted(CASES))
async def test_a_whole_request_cut_short_is_retried_like_a_dropped_connection(provider, router, http, keys, clock):
    url, whole, cut, _, _ = CASES[provider]
    route = router.post(url).mock(side_effect=[body(cut), body(whole)])
    reply = await make_provider(model(provider), http_client=http, sleep=clock.sleep).request([Message.user("hi")])
    assert reply.text == "It is 21°C in Lisbon." and reply.stop_reason == "stop"
    assert route.call_count == 2 and len(clock.sleeps) == 1


@pytest.mark.parametrize("provider", sorted(CASES))
async def test_a_request_cut_short_every_time_fails_after_its_retries(provider, router, http, keys, clock):
    url, _, cut, _, marker = CASES[provider]
    route = router.post(url).mock(side_effect=[body(cut)] * 3)
    with pytest.raises(ProviderError, match=f"without {marker}.*gave up after 3 attempts"):
        await make_provider(model(provider), http_client=http, sleep=clock.sleep).request([Message.user("hi")])
    assert route.call_count == 3


@pytest.mark.parametrize("provider", sorted(CASES))
async def test_a_stream_cut_before_any_output_is_retried(provider, router, http, keys, clock):
    url, whole, _, empty, _ = CASES[provider]
    route = router.post(url).mock(side_effect=[body(empty), body(whole)])
    events = [e async for e in make_provider(model(provider), http_client=http, sleep=clock.sleep).stream(
        [Message.user("hi")])]
    assert events[-1].reply.text == "It is 21°C in Lisbon." and route.call_count == 2
