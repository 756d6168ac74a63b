"""Values that cross the model boundary: messages, tool calls, replies, stream events.

All are frozen keyword-only dataclasses with ``to_dict``/``from_dict`` so a
reply can be journaled as JSON and rebuilt on replay with equal value::

    >>> reply = ModelReply(text="hi", usage=Usage(input_tokens=3, output_tokens=1))
    >>> ModelReply.from_dict(reply.to_dict()) == reply
    True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Union

__all__ = [
    "Role",
    "StopReason",
    "Message",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "ModelReply",
    "TextDelta",
    "ToolCallDelta",
    "Done",
    "StreamEvent",
    "event_from_dict",
]

Role = Literal["system", "user", "assistant", "tool"]
# Normalised across providers; "tool_calls" means the model wants tools run.
StopReason = Literal["stop", "tool_calls", "max_tokens", "content_filter", "unknown"]


@dataclass(frozen=True, kw_only=True)
class ToolCall:
    """One tool call the model asked for.

    ``arguments`` is the decoded JSON object; when the model sent text that is
    not a JSON object, ``arguments`` is ``{}``, ``raw_arguments`` keeps the text
    and ``parse_error`` says what is wrong, so the agent loop can send a fixable
    error back instead of crashing.
    """

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw_arguments: str = ""
    parse_error: str | None = None

    @classmethod
    def parse(cls, *, id: str, name: str, raw_arguments: str) -> ToolCall:
        """Build a call from the raw argument text a model streamed (never raises)."""
        text = raw_arguments.strip()
        if not text:  # some models send "" for a call without arguments
            return cls(id=id, name=name, arguments={}, raw_arguments=raw_arguments)
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return cls(id=id, name=name, raw_arguments=raw_arguments,
                       parse_error=f"arguments of tool {name!r} are not valid JSON: {exc}")
        if not isinstance(value, dict):
            return cls(id=id, name=name, raw_arguments=raw_arguments,
                       parse_error=f"arguments of tool {name!r} must be a JSON object, got {type(value).__name__}")
        return cls(id=id, name=name, arguments=value, raw_arguments=raw_arguments)

    @property
    def arguments_json(self) -> str:
        """The argument text to send back to a provider (raw text when it never parsed)."""
        # Echo the model's own text when we have it: providers compare it with what they sent.
        if self.parse_error is not None or self.raw_arguments.strip():
            return self.raw_arguments
        return json.dumps(self.arguments, ensure_ascii=False)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "name": self.name, "arguments": self.arguments}
        if self.raw_arguments:
            data["raw_arguments"] = self.raw_arguments
        if self.parse_error is not None:
            data["parse_error"] = self.parse_error
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolCall:
        return cls(id=data["id"], name=data["name"], arguments=dict(data.get("arguments") or {}),
                   raw_arguments=data.get("raw_arguments", ""), parse_error=data.get("parse_error"))


@dataclass(frozen=True, kw_only=True)
class Message:
    """One conversation message.

    ``tool`` messages answer the assistant's call named by ``tool_call_id``;
    ``name`` is the tool's visible name (some providers want it).
    """

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ("system", "user", "assistant", "tool"):
            raise ValueError(f"message role must be system, user, assistant or tool, not {self.role!r}")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id of the call it answers")
        # Accept a list from callers but keep the value immutable (and hashable by identity rules).
        if not isinstance(self.tool_calls, tuple):
            object.__setattr__(self, "tool_calls", tuple(self.tool_calls))

    @classmethod
    def system(cls, content: str) -> Message:
        return cls(role="system", content=content)

    @classmethod
    def user(cls, content: str) -> Message:
        return cls(role="user", content=content)

    @classmethod
    def assistant(cls, content: str = "", tool_calls: tuple[ToolCall, ...] | list[ToolCall] = ()) -> Message:
        return cls(role="assistant", content=content, tool_calls=tuple(tool_calls))

    @classmethod
    def tool(cls, tool_call_id: str, content: str, *, name: str | None = None) -> Message:
        return cls(role="tool", content=content, tool_call_id=tool_call_id, name=name)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            data["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.tool_call_id is not None:
            data["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            data["name"] = self.name
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        return cls(role=data["role"], content=data.get("content") or "",
                   tool_calls=tuple(ToolCall.from_dict(c) for c in data.get("tool_calls") or ()),
                   tool_call_id=data.get("tool_call_id"), name=data.get("name"))


@dataclass(frozen=True, kw_only=True)
class ToolSpec:
    """A tool as the model sees it: visible name, description, JSON Schema of its input."""

    name: str
    description: str = ""
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "input_schema": self.input_schema}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolSpec:
        return cls(name=data["name"], description=data.get("description", ""),
                   input_schema=data.get("input_schema") or {"type": "object", "properties": {}})


@dataclass(frozen=True, kw_only=True)
class Usage:
    """Tokens a call consumed and what they cost (from the ``llm.model`` entry's prices)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(input_tokens=self.input_tokens + other.input_tokens,
                     output_tokens=self.output_tokens + other.output_tokens,
                     cost_usd=self.cost_usd + other.cost_usd)

    def to_dict(self) -> dict[str, Any]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens, "cost_usd": self.cost_usd}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Usage:
        return cls(input_tokens=int(data.get("input_tokens", 0)), output_tokens=int(data.get("output_tokens", 0)),
                   cost_usd=float(data.get("cost_usd", 0.0)))


@dataclass(frozen=True, kw_only=True)
class ModelReply:
    """A whole model answer: text, tool calls, usage and why it stopped."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    stop_reason: StopReason = "stop"
    model: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.tool_calls, tuple):
            object.__setattr__(self, "tool_calls", tuple(self.tool_calls))

    def to_message(self) -> Message:
        """The assistant message to append to the history."""
        return Message(role="assistant", content=self.text, tool_calls=self.tool_calls)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "tool_calls": [c.to_dict() for c in self.tool_calls],
                "usage": self.usage.to_dict(), "stop_reason": self.stop_reason, "model": self.model}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelReply:
        return cls(text=data.get("text") or "",
                   tool_calls=tuple(ToolCall.from_dict(c) for c in data.get("tool_calls") or ()),
                   usage=Usage.from_dict(data.get("usage") or {}),
                   stop_reason=data.get("stop_reason", "stop"), model=data.get("model", ""))


@dataclass(frozen=True, kw_only=True)
class TextDelta:
    """A piece of the answer's text, as it streams."""

    text: str
    type: Literal["text"] = "text"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "text", "text": self.text}


@dataclass(frozen=True, kw_only=True)
class ToolCallDelta:
    """A piece of a tool call: ``index`` says which call; ``id``/``name`` come with its first piece."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    type: Literal["tool_call"] = "tool_call"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "tool_call", "index": self.index, "id": self.id, "name": self.name,
                "arguments": self.arguments}


@dataclass(frozen=True, kw_only=True)
class Done:
    """The last event of every stream: the whole reply."""

    reply: ModelReply
    type: Literal["done"] = "done"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "done", "reply": self.reply.to_dict()}


StreamEvent = Union[TextDelta, ToolCallDelta, Done]


def event_from_dict(data: dict[str, Any]) -> StreamEvent:
    """Rebuild a stream event stored with ``to_dict``."""
    kind = data.get("type")
    if kind == "text":
        return TextDelta(text=data["text"])
    if kind == "tool_call":
        return ToolCallDelta(index=data["index"], id=data.get("id"), name=data.get("name"),
                             arguments=data.get("arguments", ""))
    if kind == "done":
        return Done(reply=ModelReply.from_dict(data["reply"]))
    raise ValueError(f"unknown stream event type {kind!r}")
