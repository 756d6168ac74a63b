"""The scripted provider: replays a list of replies, one per model call, in order.

For tests and the offline demo (SPEC §6). Each script item is one reply::

    {text: "…", chunks: ["…", "…"], delay: 0.05, tool_calls: [{name: weather, arguments: {city: Lisbon}}],
     usage: {input_tokens: 10, output_tokens: 3}, error: {type: RateLimited, message: "…"}}

``arguments`` may also be a string, which is parsed like a model's raw text
(so a script can send malformed JSON). ``error`` makes that call raise the
named ``ProviderError`` subclass. ``delay`` pauses that many seconds before
each chunk (a slow stream, for tests of interrupting a reply). A call past the end raises ``ScriptExhausted``.

The replay position is the model's own business: called inside a task's model step (``model``
or ``llm``) it answers reply ``n`` where ``n`` counts the steps of that name already in the
task's journal (so a resumed task never consumes a reply twice, and tasks sharing one model do
not disturb each other), plus the ``call_index`` a conversation's turn task carries in its input
(the calls of earlier turns). Elsewhere it answers in order from its own cursor.

An entry with no ``script`` at all is the offline model (``offline.offline_reply``): rule-based,
any number of turns, never exhausted — the default app's model.

    >>> model = ScriptedProvider([{"text": "hello"}])
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, AsyncIterator, Sequence

from wippy_agents import errors as _errors
from wippy_agents.errors import ProviderError
from wippy_agents.llm.base import collect
from wippy_agents.llm.config import ModelConfig, load_script
from wippy_agents.llm.pricing import priced_usage
from wippy_agents.llm.providers.offline import offline_reply
from wippy_agents.llm.tokens import TokenCounter
from wippy_agents.llm.types import (Done, Message, ModelReply, StreamEvent, TextDelta, ToolCall, ToolCallDelta,
                                    ToolSpec)
from wippy_agents.tasks import current_step

__all__ = ["ScriptedProvider", "ScriptedCall", "ScriptExhausted"]


# The step names under which the agents layer journals model calls (the turn loop, a Lua agent's llm calls).
MODEL_STEPS = ("model", "llm")


class ScriptExhausted(ProviderError):
    """A scripted model was called more times than its script has replies."""


@dataclass(frozen=True, kw_only=True)
class ScriptedCall:
    """What one call to a scripted model received (for assertions in tests)."""

    index: int
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...]
    model: str


class ScriptedProvider:
    """Replays ``script`` replies in order; records every call in ``calls``.

    ``start`` skips replies already consumed; inside a task the position comes from the
    task's journal instead (see the module docstring), so a provider shared by several
    tasks stays deterministic. Usage is the item's ``usage`` or a tiktoken count; cost uses the config's prices.
    """

    def __init__(self, script: Sequence[dict[str, Any]] | None = None, *, config: ModelConfig | None = None,
                 start: int = 0) -> None:
        if config is None:
            config = ModelConfig(provider="scripted", model="scripted", script=load_script(list(script or ())))
        elif script is not None:
            config = ModelConfig(**{**_fields(config), "script": load_script(list(script))})
        self.config = config
        self.offline = config.script is None  # no script at all: the rule-based offline model
        self.script: tuple[dict[str, Any], ...] = tuple(config.script or ())
        if start < 0 or start > len(self.script):
            raise ValueError(f"start offset {start} is outside the script of {len(self.script)} replies")
        self.cursor = start
        self.calls: list[ScriptedCall] = []
        self._failed: dict[str, int] = {}  # task id -> scripted errors raised for it (they leave no journal row)
        self._counter = TokenCounter(config.model)

    @property
    def remaining(self) -> int:
        return len(self.script) - self.cursor

    def seek(self, index: int) -> None:
        """Continue from reply ``index`` (0-based): the number of model calls a journal already holds."""
        if index < 0 or index > len(self.script):
            raise ValueError(f"offset {index} is outside the script of {len(self.script)} replies")
        self.cursor = index

    def assert_complete(self) -> None:
        """Raise ``AssertionError`` unless every reply of the script was used."""
        if not self.offline and self.cursor < len(self.script):
            unused = ", ".join(f"#{i + 1} {_preview(self.script[i])}" for i in range(self.cursor, len(self.script)))
            raise AssertionError(f"{self._label()} used {self.cursor} of {len(self.script)} replies; "
                                 f"unused: {unused}")

    async def aclose(self) -> None:
        return None

    async def request(self, messages: Sequence[Message], *, tools: Sequence[ToolSpec] = (),
                      model_cfg: ModelConfig | None = None) -> ModelReply:
        """The next reply of the script; raises ``ScriptExhausted`` past the end."""
        return await collect(self.stream(messages, tools=tools, model_cfg=model_cfg))

    def position(self) -> int:
        """The reply the next call answers with: from the running task step's journal, else the cursor.

        A failed model call leaves no journal row, so the ``error`` replies this model raised for a task
        are counted here too (a resumed task then gets the reply after the error, not the error again).
        """
        scope = current_step()
        if scope is None or scope.name not in MODEL_STEPS:  # e.g. a Lua tool's own llm call inside a tool step
            return self.cursor
        inp = scope.context.task.input
        before = inp.get("call_index") if isinstance(inp, dict) else None
        failed = self._failed.get(scope.context.task.id, 0)
        return (int(before) if isinstance(before, int) and before > 0 else 0) + scope.earlier() + failed

    async def stream(self, messages: Sequence[Message], *, tools: Sequence[ToolSpec] = (),
                     model_cfg: ModelConfig | None = None) -> AsyncIterator[StreamEvent]:
        """Yield the reply's chunks (or its whole text), its tool calls, then ``Done``."""
        index = self.position()
        cfg = model_cfg or self.config
        self.calls.append(ScriptedCall(index=index, messages=tuple(messages), tools=tuple(tools), model=cfg.model))
        if self.offline:
            self.cursor = max(self.cursor, index + 1)
            async for event in self._play(offline_reply(messages, tools), index, messages, cfg):
                yield event
            return
        if index >= len(self.script):
            last = _preview(messages[-1].to_dict()) if messages else "none"
            raise ScriptExhausted(
                f"{self._label()} has {len(self.script)} replies but call #{index + 1} wants another "
                f"(last message: {last}); add a reply to the script or find why the agent made an extra call",
                entry=self.config.id, call_index=index, replies=len(self.script))
        self.cursor = max(self.cursor, index + 1)
        async for event in self._play(self.script[index], index, messages, cfg):
            yield event

    async def _play(self, item: dict[str, Any], index: int, messages: Sequence[Message],
                    cfg: ModelConfig) -> AsyncIterator[StreamEvent]:
        if item.get("error"):
            scope = current_step()
            if scope is not None and scope.name in MODEL_STEPS:
                self._failed[scope.context.task.id] = self._failed.get(scope.context.task.id, 0) + 1
            raise _error(item["error"], self.config.id)
        reply = self._reply(item, index, messages, cfg)
        delay = float(item.get("delay") or 0)
        for piece in item.get("chunks") or ([reply.text] if reply.text else []):
            if delay:
                await asyncio.sleep(delay)
            yield TextDelta(text=piece)
        for n, call in enumerate(reply.tool_calls):
            yield ToolCallDelta(index=n, id=call.id, name=call.name, arguments=call.arguments_json)
        yield Done(reply=reply)

    def _reply(self, item: dict[str, Any], index: int, messages: Sequence[Message], cfg: ModelConfig) -> ModelReply:
        text = item.get("text", "".join(item.get("chunks") or ()))
        calls = []
        for j, spec in enumerate(item.get("tool_calls") or ()):
            call_id = spec.get("id") or f"call_{index + 1}_{j + 1}"
            args = spec.get("arguments", {})
            if isinstance(args, str):
                calls.append(ToolCall.parse(id=call_id, name=spec["name"], raw_arguments=args))
            else:
                calls.append(ToolCall(id=call_id, name=spec["name"], arguments=dict(args or {})))
        if "usage" in item:
            used_in = int(item["usage"].get("input_tokens", 0))
            used_out = int(item["usage"].get("output_tokens", 0))
        else:
            used_in = self._counter.count_messages(messages)
            used_out = self._counter.count(text) + sum(self._counter.count(c.name + c.arguments_json)
                                                       for c in calls)
        stop = item.get("stop_reason") or ("tool_calls" if calls else "stop")
        return ModelReply(text=text, tool_calls=tuple(calls), usage=priced_usage(used_in, used_out, cfg),
                          stop_reason=stop, model=cfg.model)

    def _label(self) -> str:
        return f"scripted model {self.config.id!r}" if self.config.id else "scripted model"


def _fields(cfg: ModelConfig) -> dict[str, Any]:
    return {name: getattr(cfg, name) for name in cfg.__dataclass_fields__}


def _preview(item: Any, limit: int = 80) -> str:
    text = json.dumps(item, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error(spec: dict[str, Any], entry: str) -> ProviderError:
    cls = getattr(_errors, str(spec.get("type", "ProviderError")), None)
    if not (isinstance(cls, type) and issubclass(cls, ProviderError)):
        cls = ProviderError
    details = {k: v for k, v in spec.items() if k not in ("type", "message")}
    details.setdefault("retryable", cls is not ProviderError and cls.__name__ in ("RateLimited", "ProviderTimeout"))
    return cls(spec["message"], entry=entry, scripted=True, **details)
