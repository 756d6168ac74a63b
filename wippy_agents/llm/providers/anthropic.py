"""Anthropic Messages through the official ``anthropic`` SDK, streamed.

System messages become the ``system`` parameter; tool results become
``tool_result`` blocks in a user turn; consecutive turns of one role are
merged because the Messages API wants user and assistant to alternate.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

import anthropic

from wippy_agents.llm.base import ReplyBuilder
from wippy_agents.llm.config import ModelConfig
from wippy_agents.llm.pricing import priced_usage
from wippy_agents.llm.providers._sdk import SdkProvider, SdkRetry, retrying_client
from wippy_agents.llm.providers._errors import cut_short, map_sdk_error, missing_key
from wippy_agents.llm.types import (Done, Message, StopReason, StreamEvent, TextDelta, ToolCallDelta,
                                    ToolSpec)

__all__ = ["AnthropicProvider", "to_anthropic_messages"]

_Client = retrying_client(anthropic.AsyncAnthropic)

DEFAULT_MAX_TOKENS = 4096  # the Messages API requires max_tokens; used when the entry sets none

_STOP: dict[str | None, StopReason] = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "tool_use": "tool_calls",
    "max_tokens": "max_tokens", "refusal": "content_filter",
}


def to_anthropic_messages(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    """``(system, messages)`` for the Messages API."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            system.append(m.content)
            continue
        if m.role == "tool":
            role, blocks = "user", [{"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}]
        else:
            role = m.role
            blocks = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                       for c in m.tool_calls]
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    for item in out:
        if not item["content"]:  # the API rejects an empty turn
            item["content"] = [{"type": "text", "text": "(empty)"}]
    return "\n\n".join(system), out


class AnthropicProvider(SdkProvider):
    """Messages API provider; ``stream()`` is the primary path.

    Raises ``MissingApiKey`` at construction when the key's env var is unset;
    calls raise ``ProviderError`` subclasses. ``http_client`` must be an
    ``httpx2.AsyncClient`` (what the SDK accepts).
    """

    def __init__(self, config: ModelConfig, *, http_client: Any = None,
                 sleep: Callable[[float], Awaitable[Any]] | None = None) -> None:
        self.config = config
        key = config.api_key()
        if key is None:
            raise missing_key(config)
        self._owns_http = http_client is None
        kwargs: dict[str, Any] = {"api_key": key, "timeout": config.timeout, "max_retries": config.max_retries,
                                  "http_client": http_client}
        if config.base_url:
            kwargs["base_url"] = config.base_url
        self._client = _Client(**kwargs)
        self._client.wippy_retry = SdkRetry(config, **({"sleep": sleep} if sleep else {}))

    def _params(self, cfg: ModelConfig, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> dict[str, Any]:
        system, msgs = to_anthropic_messages(messages)
        params: dict[str, Any] = {"model": cfg.model, "messages": msgs, "stream": True, "timeout": cfg.timeout,
                                  "max_tokens": cfg.max_output_tokens or DEFAULT_MAX_TOKENS}
        if system:
            params["system"] = system
        if tools:
            params["tools"] = [t.to_dict() for t in tools]
        if cfg.temperature is not None:
            params["temperature"] = cfg.temperature
        return params

    async def stream(self, messages: Sequence[Message], *, tools: Sequence[ToolSpec] = (),
                     model_cfg: ModelConfig | None = None) -> AsyncIterator[StreamEvent]:
        """Yield text and tool-call pieces as they arrive, then ``Done(reply)``."""
        cfg = model_cfg or self.config
        sdk_stream = await self._open(self._client.messages.create, self._params(cfg, messages, tools), cfg)
        builder = ReplyBuilder()
        tool_index: dict[int, int] = {}  # content block index -> ordinal among tool calls
        stop: str | None = None
        ended = False
        usage_in = usage_out = 0
        try:
            async for event in sdk_stream:
                kind = event.type
                if kind == "message_start":
                    u = event.message.usage
                    usage_in = (u.input_tokens or 0) + (getattr(u, "cache_creation_input_tokens", 0) or 0) \
                        + (getattr(u, "cache_read_input_tokens", 0) or 0)
                    usage_out = u.output_tokens or 0
                elif kind == "content_block_start" and event.content_block.type == "tool_use":
                    block = event.content_block
                    n = tool_index[event.index] = len(tool_index)
                    builder.tool_call(n, id=block.id, name=block.name)
                    yield ToolCallDelta(index=n, id=block.id, name=block.name)
                elif kind == "content_block_start" and event.content_block.type == "text":
                    if event.content_block.text:
                        builder.text(event.content_block.text)
                        yield TextDelta(text=event.content_block.text)
                elif kind == "content_block_delta":
                    delta = event.delta
                    if delta.type == "text_delta" and delta.text:
                        builder.text(delta.text)
                        yield TextDelta(text=delta.text)
                    elif delta.type == "input_json_delta" and event.index in tool_index:
                        n = tool_index[event.index]
                        builder.tool_call(n, arguments=delta.partial_json)
                        yield ToolCallDelta(index=n, arguments=delta.partial_json)
                elif kind == "message_delta":
                    stop = event.delta.stop_reason or stop
                    if event.usage is not None and event.usage.output_tokens is not None:
                        usage_out = event.usage.output_tokens
                elif kind == "message_stop":
                    ended = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise map_sdk_error(exc, cfg, mid_reply=True) from exc
        finally:
            await sdk_stream.close()
        if not ended:  # the body ended before message_stop: a fragment, not an answer
            raise cut_short(cfg, "message_stop", had_output=builder.has_output)
        reply = builder.build(usage=priced_usage(usage_in, usage_out, cfg),
                              stop_reason=_STOP.get(stop, "unknown"), model=cfg.model)
        yield Done(reply=reply)
