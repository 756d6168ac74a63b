"""What the SDK-backed providers (OpenAI, Anthropic) share, and how their SDKs retry.

The SDKs retry what fails before a stream starts (HTTP 429/408/409/5xx, a
refused connection, a timeout before the headers), honouring
``retry-after(-ms)``; we set their ``max_retries`` from the model entry and
hook their wait (``SdkRetry``) so each retry still logs the project's one
line, a ``Retry-After`` longer than our cap is not waited for, and tests can
inject the sleep. What fails after the stream started is ``RetryingProvider``'s.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

from wippy_agents.errors import ProviderError
from wippy_agents.llm.base import collect
from wippy_agents.llm.config import ModelConfig
from wippy_agents.llm.providers._errors import map_sdk_error, parse_retry_after
from wippy_agents.llm.types import Message, ModelReply, StreamEvent, ToolSpec
from wippy_agents.runtime.backoff import backoff_delay, plural

__all__ = ["SdkProvider", "SdkRetry", "retrying_client"]

log = logging.getLogger("wippy_agents.llm.retry")

# Per call (one asyncio task): how many attempts the SDK made so far.
_ATTEMPTS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("wippy_sdk_attempts", default=None)


class SdkRetry:
    """The wait between the SDK's own attempts: our backoff, our log line, our ``Retry-After`` cap."""

    def __init__(self, config: ModelConfig, *, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 base_delay: float = 0.5, max_delay: float = 20.0, max_retry_after: float = 60.0,
                 rand: Callable[[], float] = random.random) -> None:
        self.config = config
        self.sleep = sleep
        self.base_delay, self.max_delay, self.max_retry_after = base_delay, max_delay, max_retry_after
        self.rand = rand

    async def wait(self, client: Any, retries_taken: int, max_retries: int, response: Any) -> None:
        cfg = self.config
        retry_after = parse_retry_after(response.headers) if response is not None else None
        if response is not None and retry_after is not None and retry_after > self.max_retry_after:
            exc = map_sdk_error(client._make_status_error_from_response(response), cfg)
            raise type(exc)(f"{exc.message} (not waiting {retry_after:g}s; over the {self.max_retry_after:g}s "
                            f"limit)", **{**exc.details, "attempts": retries_taken + 1, "sdk_retried": True})
        delay = retry_after if retry_after is not None else backoff_delay(
            retries_taken, base=self.base_delay, cap=self.max_delay, rand=self.rand)
        why = f"HTTP {response.status_code}" if response is not None else "no answer (connection failed or timed out)"
        log.warning("model %r: %s; retry %d/%d in %.2fs", cfg.id or cfg.model, why, retries_taken + 1, max_retries,
                    delay)
        attempts = _ATTEMPTS.get()
        if attempts is not None:
            attempts[0] = retries_taken + 2
        await self.sleep(delay)


def retrying_client(sdk_class: type) -> type:
    """A subclass of an SDK client class whose retry wait is ``self.wippy_retry.wait`` (set after init)."""

    class Client(sdk_class):  # type: ignore[misc, valid-type]
        wippy_retry: SdkRetry

        async def _sleep_for_retry(self, *, retries_taken: int, max_retries: int, options: Any,
                                   response: Any) -> None:
            await self.wippy_retry.wait(self, retries_taken, max_retries, response)

    Client.__name__ = Client.__qualname__ = f"Retrying{sdk_class.__name__}"
    return Client


class SdkProvider:
    """Base of a provider that wraps an official SDK client in ``_client``.

    Subclasses set ``_client`` and ``_owns_http`` (whether the SDK made its own
    HTTP pool) and implement ``stream``; ``request`` is the stream, folded.
    """

    _client: Any
    _owns_http: bool

    def stream(self, messages: Sequence[Message], *, tools: Sequence[ToolSpec] = (),
               model_cfg: ModelConfig | None = None) -> AsyncIterator[StreamEvent]:
        raise NotImplementedError

    async def _open(self, create: Callable[..., Awaitable[Any]], params: dict[str, Any], cfg: ModelConfig) -> Any:
        """Start the SDK's stream (the SDK retries this part); its failure as our error, attempts counted."""
        attempts = [1]
        token = _ATTEMPTS.set(attempts)
        try:
            return await create(**params)
        except asyncio.CancelledError:
            raise
        except ProviderError as exc:  # raised by our own retry hook
            raise exc
        except Exception as exc:
            err = map_sdk_error(exc, cfg)
            n = attempts[0]
            if err.details.get("retryable") and n > 1:
                err = type(err)(f"{err.message} (gave up after {plural(n, 'attempt')})", **err.details)
            err.details.update(attempts=n, sdk_retried=True)
            raise err from exc
        finally:
            _ATTEMPTS.reset(token)

    async def aclose(self) -> None:
        """Close the SDK's pool (an injected ``http_client`` stays open: its owner closes it)."""
        if self._owns_http:
            await self._client.close()

    async def request(self, messages: Sequence[Message], *, tools: Sequence[ToolSpec] = (),
                      model_cfg: ModelConfig | None = None) -> ModelReply:
        """One whole reply (the stream, folded)."""
        return await collect(self.stream(messages, tools=tools, model_cfg=model_cfg))
