"""OpenAI Chat Completions through the official ``openai`` SDK, streamed.

The SDK retries what fails before the stream starts (``max_retries`` from the
entry; the wait is ours, see ``_sdk``); ``RetryingProvider`` retries what fails
after. Pass ``http_client`` (an ``httpx2.AsyncClient``, or an
``httpx.AsyncClient``) to share a pool or to mock at the transport in tests.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

import openai

from wippy_agents.llm.base import ReplyBuilder
from wippy_agents.llm.config import ModelConfig
from wippy_agents.llm.pricing import priced_usage
from wippy_agents.llm.providers._sdk import SdkProvider, SdkRetry, retrying_client
from wippy_agents.llm.providers._errors import cut_short, map_sdk_error, missing_key
from wippy_agents.llm.types import (Done, Message, StopReason, StreamEvent, TextDelta, ToolCallDelta,
                                    ToolSpec)

__all__ = ["OpenAIProvider", "to_openai_messages", "to_openai_tools"]

log = logging.getLogger(__name__)

_Client = retrying_client(openai.AsyncOpenAI)

_FINISH: dict[str | None, StopReason] = {
    "stop": "stop", "tool_calls": "tool_calls", "function_call": "tool_calls",
    "length": "max_tokens", "content_filter": "content_filter",
}


def to_openai_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Our messages as Chat Completions message dicts."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            out.append({"role": "assistant", "content": m.content or None, "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
                for c in m.tool_calls]})
        else:
            item: dict[str, Any] = {"role": m.role, "content": m.content}
            if m.name and m.role == "user":
                item["name"] = m.name
            out.append(item)
    return out


def to_openai_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": t.input_schema}} for t in tools]


class OpenAIProvider(SdkProvider):
    """Chat Completions provider; ``stream()`` is the primary path.

        >>> provider = OpenAIProvider(ModelConfig(provider="openai", model="gpt-4o-mini"))  # doctest: +SKIP
        >>> reply = await provider.request([Message.user("hi")])                         # doctest: +SKIP

    Raises ``MissingApiKey`` at construction when the key's env var is unset;
    calls raise ``ProviderError`` subclasses (see ``_errors.map_sdk_error``).
    """

    # openai_compatible servers (Ollama, vLLM, llama.cpp) know `max_tokens`, not the newer name.
    _max_tokens_field = "max_completion_tokens"
    _key_required = True

    def __init__(self, config: ModelConfig, *, http_client: Any = None,
                 sleep: Callable[[float], Awaitable[Any]] | None = None) -> None:
        self.config = config
        key = config.api_key()
        if key is None and self._key_required:
            raise missing_key(config)
        self._owns_http = http_client is None
        self._client = _Client(api_key=key or "not-needed", base_url=config.base_url, timeout=config.timeout,
                               max_retries=config.max_retries, http_client=http_client)
        self._client.wippy_retry = SdkRetry(config, **({"sleep": sleep} if sleep else {}))

    def _params(self, cfg: ModelConfig, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> dict[str, Any]:
        params: dict[str, Any] = {"model": cfg.model, "messages": to_openai_messages(messages), "stream": True,
                                  "stream_options": {"include_usage": True}, "timeout": cfg.timeout}
        if tools:
            params["tools"] = to_openai_tools(tools)
        if cfg.max_output_tokens is not None:
            params[self._max_tokens_field] = cfg.max_output_tokens
        if cfg.temperature is not None:
            params["temperature"] = cfg.temperature
        return params

    async def stream(self, messages: Sequence[Message], *, tools: Sequence[ToolSpec] = (),
                     model_cfg: ModelConfig | None = None) -> AsyncIterator[StreamEvent]:
        """Yield text and tool-call pieces as they arrive, then ``Done(reply)``."""
        cfg = model_cfg or self.config
        sdk_stream = await self._open(self._client.chat.completions.create, self._params(cfg, messages, tools), cfg)
        builder = ReplyBuilder()
        finish: str | None = None
        usage_in = usage_out = None
        try:
            async for chunk in sdk_stream:
                if chunk.usage is not None:
                    usage_in, usage_out = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                for choice in chunk.choices[:1]:
                    delta = choice.delta
                    if delta is not None and delta.content:
                        builder.text(delta.content)
                        yield TextDelta(text=delta.content)
                    known = builder.call_count
                    for pos, tc in enumerate((delta.tool_calls or ()) if delta is not None else ()):
                        fn = getattr(tc, "function", None)
                        name, args = (fn.name, fn.arguments or "") if fn is not None else (None, "")
                        # Some compatible servers send whole calls without an index: number them in order.
                        index = getattr(tc, "index", None)
                        index = known + pos if index is None else index
                        call_id = getattr(tc, "id", None)
                        builder.tool_call(index, id=call_id, name=name, arguments=args)
                        yield ToolCallDelta(index=index, id=call_id, name=name, arguments=args)
                    if choice.finish_reason:
                        finish = choice.finish_reason
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise map_sdk_error(exc, cfg, mid_reply=True) from exc
        finally:
            await sdk_stream.close()
        if finish is None:  # the body ended before the choice said why it stopped: a fragment
            raise cut_short(cfg, "a finish_reason", had_output=builder.has_output)
        if usage_in is None:
            usage_in, usage_out = _estimate_usage(cfg, messages, builder)
        reply = builder.build(usage=priced_usage(usage_in, usage_out or 0, cfg),
                              stop_reason=_FINISH.get(finish, "unknown"), model=cfg.model)
        yield Done(reply=reply)


def _estimate_usage(cfg: ModelConfig, messages: Sequence[Message], builder: ReplyBuilder) -> tuple[int, int]:
    """Count with tiktoken when a compatible server sends no usage, so budgets still hold."""
    from wippy_agents.llm.tokens import count_message_tokens, count_tokens

    reply = builder.build(usage=priced_usage(0, 0, cfg), stop_reason="stop", model=cfg.model)
    out = count_tokens(reply.text, cfg.model) + sum(
        count_tokens(c.name + c.arguments_json, cfg.model) for c in reply.tool_calls)
    log.debug("model %r sent no usage; estimated with tiktoken", cfg.id or cfg.model)
    return count_message_tokens(messages, cfg.model), out
