"""The retry wrapper: what is retried, how long it waits, and never after output started."""

from __future__ import annotations

import asyncio

import pytest

from wippy_agents.errors import ProviderError, ProviderTimeout, RateLimited
from wippy_agents.llm import (Done, Message, ModelConfig, ModelReply, RetryingProvider, TextDelta, backoff_delay,
                              collect)
from wippy_agents.testing import FakeClock

CFG = ModelConfig(provider="openai", model="gpt-4o-mini", id="app.models:m", max_retries=3)


class Flaky:
    """A provider that fails with the given errors, in order, then answers; or fails mid-stream."""

    def __init__(self, errors, *, fail_after_text: bool = False):
        self.config = CFG
        self.errors = list(errors)
        self.fail_after_text = fail_after_text
        self.attempts = 0

    async def aclose(self):
        pass

    async def request(self, messages, **kw):
        return await collect(self.stream(messages, **kw))

    async def stream(self, messages, **kw):
        self.attempts += 1
        if self.fail_after_text:
            yield TextDelta(text="Hel")
        if self.errors:
            raise self.errors.pop(0)
        yield TextDelta(text="Hello")
        yield Done(reply=ModelReply(text="Hello"))


def unavailable() -> ProviderError:
    return ProviderError("HTTP 503", status=503, retryable=True)


async def test_retryable_errors_are_retried_with_growing_jittered_waits():
    clock = FakeClock()
    inner = Flaky([unavailable(), unavailable(), unavailable()])
    provider = RetryingProvider(inner, sleep=clock.sleep, base_delay=1.0, rand=lambda: 0.5)
    reply = await provider.request([Message.user("hi")])
    assert reply.text == "Hello" and inner.attempts == 4
    assert clock.sleeps == [0.75, 1.5, 3.0]


def test_backoff_stays_within_half_and_whole_of_the_capped_delay():
    for attempt in range(8):
        low = backoff_delay(attempt, base=0.5, cap=10, rand=lambda: 0.0)
        high = backoff_delay(attempt, base=0.5, cap=10, rand=lambda: 1.0)
        assert low == min(10, 0.5 * 2 ** attempt) / 2 and high == min(10, 0.5 * 2 ** attempt)


async def test_a_stream_that_already_yielded_output_is_not_retried():
    clock = FakeClock()
    inner = Flaky([unavailable()], fail_after_text=True)
    provider = RetryingProvider(inner, sleep=clock.sleep)
    seen = []
    with pytest.raises(ProviderError, match="had started streaming, so it was not retried") as info:
        async for event in provider.stream([Message.user("hi")]):
            seen.append(event)
    assert [e.text for e in seen] == ["Hel"] and inner.attempts == 1 and clock.sleeps == []
    assert info.value.details["partial"] is True


async def test_a_stream_that_failed_before_any_output_is_retried():
    clock = FakeClock()
    inner = Flaky([ProviderTimeout("slow", retryable=True)])
    events = [e async for e in RetryingProvider(inner, sleep=clock.sleep, rand=lambda: 0.0).stream([])]
    assert [type(e) for e in events] == [TextDelta, Done] and inner.attempts == 2 and clock.sleeps == [0.25]


async def test_non_retryable_errors_are_raised_at_once():
    clock = FakeClock()
    inner = Flaky([ProviderError("HTTP 400 bad schema", status=400, retryable=False)])
    with pytest.raises(ProviderError, match="^HTTP 400 bad schema$"):
        await RetryingProvider(inner, sleep=clock.sleep).request([])
    assert inner.attempts == 1 and clock.sleeps == []


async def test_a_retry_after_beyond_the_limit_is_not_waited_for():
    clock = FakeClock()
    inner = Flaky([RateLimited("HTTP 429", retry_after=3600.0, retryable=True)])
    with pytest.raises(RateLimited, match=r"not waiting 3600s; over the 60s limit"):
        await RetryingProvider(inner, sleep=clock.sleep).request([])
    assert clock.sleeps == []


async def test_the_per_call_config_sets_the_retry_count():
    clock = FakeClock()
    inner = Flaky([unavailable()] * 5)
    once = ModelConfig(provider="openai", model="gpt-4o-mini", max_retries=1)
    with pytest.raises(ProviderError, match="gave up after 2 attempts"):
        await RetryingProvider(inner, sleep=clock.sleep).request([], model_cfg=once)


async def test_cancelling_during_the_backoff_cancels_the_call():
    started = asyncio.Event()

    async def slow_sleep(_seconds):
        started.set()
        await asyncio.Event().wait()  # never returns by itself

    provider = RetryingProvider(Flaky([unavailable()]), sleep=slow_sleep)
    task = asyncio.create_task(provider.request([]))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
