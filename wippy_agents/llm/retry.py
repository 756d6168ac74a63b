"""Retries of what fails after a reply's stream started, as a wrapper around any provider.

What fails before the stream starts (HTTP 429/5xx, a refused connection) the
SDK has retried already (``providers._sdk``: ``max_retries`` from the entry,
our log line and ``Retry-After`` cap); such errors carry ``sdk_retried`` and
are not retried again here. Retried here: a body that broke or was cut short
before any output reached the consumer, and any retryable failure of a whole
``request()`` (nobody saw a partial reply). Never retried: a stream that
already yielded output (the user saw it; a retry would repeat it), and
everything else (bad request, bad key, a scripted error).

    >>> provider = RetryingProvider(OpenAIProvider(cfg), sleep=fake_sleep)   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

from wippy_agents.errors import ProviderError
from wippy_agents.llm.base import Provider
from wippy_agents.llm.config import ModelConfig
from wippy_agents.runtime.backoff import backoff_delay, plural, retry_async
from wippy_agents.llm.types import Message, ModelReply, StreamEvent, ToolSpec

__all__ = ["RetryingProvider", "backoff_delay"]

log = logging.getLogger(__name__)


class RetryingProvider:
    """Wraps a ``Provider``; same interface. ``sleep`` and ``rand`` are injectable for tests.

    ``max_retries`` defaults to the (per-call) model config's ``max_retries``.
    A ``Retry-After`` longer than ``max_retry_after`` seconds is not waited
    for: the error is raised at once, saying how long the server asked for.
    Raises the last ``ProviderError`` with ``details["attempts"]`` when retries run out.
    """

    def __init__(self, inner: Provider, *, max_retries: int | None = None, base_delay: float = 0.5,
                 max_delay: float = 20.0, max_retry_after: float = 60.0,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 rand: Callable[[], float] = random.random) -> None:
        self.inner = inner
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._rand = rand

    @property
    def config(self) -> ModelConfig:
        return self.inner.config

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def request(self, messages: Sequence[Message], *, tools: Sequence[ToolSpec] = (),
                      model_cfg: ModelConfig | None = None) -> ModelReply:
        """The inner ``request``, retried; a whole reply reaches nobody until it is complete, so any
        retryable failure may be retried."""
        cfg = model_cfg or self.config

        def decide(exc: Exception, attempt: int) -> float | None:
            if not isinstance(exc, ProviderError):
                return None
            return self._delay(exc, attempt, cfg)

        return await retry_async(lambda: self.inner.request(messages, tools=tools, model_cfg=model_cfg), decide,
                                 sleep=self._sleep)

    async def stream(self, messages: Sequence[Message], *, tools: Sequence[ToolSpec] = (),
                     model_cfg: ModelConfig | None = None) -> AsyncIterator[StreamEvent]:
        """The inner ``stream``, retried only while it has yielded nothing."""
        cfg = model_cfg or self.config
        attempt = 0
        while True:
            started = False
            events = self.inner.stream(messages, tools=tools, model_cfg=model_cfg)
            try:
                async for event in events:
                    started = True
                    yield event
                return
            except ProviderError as exc:
                if started:
                    raise type(exc)(f"{exc.message} (the reply had started streaming, so it was not retried)",
                                    **{**exc.details, "partial": True}) from exc
                await self._sleep(self._delay(exc, attempt, cfg))
            finally:
                await events.aclose()
            attempt += 1

    def _delay(self, exc: ProviderError, attempt: int, cfg: ModelConfig) -> float:
        """Seconds to wait before the next attempt (logged); raises ``exc`` when it must not be retried."""
        limit = cfg.max_retries if self.max_retries is None else self.max_retries
        if not exc.details.get("retryable") or exc.details.get("sdk_retried"):
            raise exc
        if attempt >= limit:
            raise type(exc)(f"{exc.message} (gave up after {plural(attempt + 1, 'attempt')})",
                            **{**exc.details, "attempts": attempt + 1}) from exc
        retry_after = exc.details.get("retry_after")
        if retry_after is not None and retry_after > self.max_retry_after:
            raise type(exc)(f"{exc.message} (not waiting {retry_after:g}s; over the {self.max_retry_after:g}s "
                            f"limit)", **{**exc.details, "attempts": attempt + 1}) from exc
        delay = retry_after if retry_after is not None else backoff_delay(
            attempt, base=self.base_delay, cap=self.max_delay, rand=self._rand)
        log.warning("model %r: %s; retry %d/%d in %.2fs", cfg.id or cfg.model, exc.message, attempt + 1, limit, delay)
        return delay
