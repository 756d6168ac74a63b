"""What the SDK-backed providers (OpenAI, Anthropic) share."""

from __future__ import annotations

from typing import Any, AsyncIterator, Sequence

from wippy_agents.llm.base import collect
from wippy_agents.llm.config import ModelConfig
from wippy_agents.llm.types import Message, ModelReply, StreamEvent, ToolSpec

__all__ = ["SdkProvider"]


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

    async def aclose(self) -> None:
        """Close the SDK's pool (an injected ``http_client`` stays open: its owner closes it)."""
        if self._owns_http:
            await self._client.close()

    async def request(self, messages: Sequence[Message], *, tools: Sequence[ToolSpec] = (),
                      model_cfg: ModelConfig | None = None) -> ModelReply:
        """One whole reply (the stream, folded)."""
        return await collect(self.stream(messages, tools=tools, model_cfg=model_cfg))
