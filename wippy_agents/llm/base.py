"""The provider seam: one ``Protocol`` every model backend implements.

``stream()`` is the primary path: it yields ``TextDelta``/``ToolCallDelta``
events and always ends with one ``Done(reply)``. ``request()`` is the same call
with the deltas folded away (``collect``).
"""

from __future__ import annotations

from typing import AsyncIterator, Protocol, Sequence, runtime_checkable

from wippy_agents.errors import ProviderError
from wippy_agents.llm.config import ModelConfig
from wippy_agents.llm.types import Done, Message, ModelReply, StopReason, StreamEvent, ToolCall, ToolSpec, Usage

__all__ = ["Provider", "collect", "ReplyBuilder"]


@runtime_checkable
class Provider(Protocol):
    """A model backend.

    ``model_cfg`` overrides the provider's own config for one call (an agent
    whose model entry changed mid-run). Both methods raise ``ProviderError``
    subclasses only; a stream that ends without the provider's end marker
    raises (it never ends with a ``Done`` holding a fragment).
    """

    config: ModelConfig

    async def request(self, messages: Sequence[Message], *, tools: Sequence[ToolSpec] = (),
                      model_cfg: ModelConfig | None = None) -> ModelReply: ...

    def stream(self, messages: Sequence[Message], *, tools: Sequence[ToolSpec] = (),
               model_cfg: ModelConfig | None = None) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...


async def collect(events: AsyncIterator[StreamEvent]) -> ModelReply:
    """Drain a stream and return its final reply; raises ``ProviderError`` if it ends without ``Done``."""
    reply: ModelReply | None = None
    try:
        async for event in events:
            if isinstance(event, Done):
                reply = event.reply
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    if reply is None:
        raise ProviderError("the model stream ended without a final reply")
    return reply


class ReplyBuilder:
    """Folds streamed text and tool-call pieces into a ``ModelReply``.

    Tool calls are keyed by the provider's index so interleaved pieces of
    parallel calls land in the right call.
    """

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, dict[str, str]] = {}

    def text(self, piece: str) -> None:
        self._text.append(piece)

    def tool_call(self, index: int, *, id: str | None = None, name: str | None = None, arguments: str = "") -> None:
        call = self._calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
        if id:
            call["id"] = id
        if name:
            call["name"] = name
        call["arguments"] += arguments

    @property
    def call_count(self) -> int:
        return len(self._calls)

    @property
    def has_output(self) -> bool:
        return bool(self._text or self._calls)

    def build(self, *, usage: Usage, stop_reason: StopReason, model: str) -> ModelReply:
        calls = tuple(
            ToolCall.parse(id=c["id"] or f"call_{i}", name=c["name"], raw_arguments=c["arguments"])
            for i, c in sorted(self._calls.items())
        )
        if calls and stop_reason == "stop":
            stop_reason = "tool_calls"  # some compatible servers say "stop" even when they called tools
        return ModelReply(text="".join(self._text), tool_calls=calls, usage=usage,
                          stop_reason=stop_reason, model=model)
