"""Kinds: the one place where kind handlers are registered.

>>> from wippy_agents.registry import kinds
>>> kinds.get("function.lua").schema["required"][:2]
['name', 'kind']

Another layer adds a kind with ``kinds.register(MyHandler())``.
"""

from __future__ import annotations

from ...errors import ValidationError
from .ai import Agent, LlmModel, Prompt, tool_visible_name
from .base import KindHandler, Ref, RefField
from .code import LUA_KINDS, FunctionLua, LibraryLua, ProcessLua, WorkflowLua
from .config import RegistryEntry, SecurityPolicy
from .mcp import MCP_KINDS, McpServer, McpTool
from .python import FunctionPython
from .services import ProcessHost, ProcessService

__all__ = [
    "KindHandler",
    "Ref",
    "RefField",
    "LUA_KINDS",
    "MCP_KINDS",
    "register",
    "get",
    "find",
    "names",
    "schema",
    "tool_visible_name",
]

_HANDLERS: dict[str, KindHandler] = {}


def register(handler: KindHandler, *, replace: bool = False) -> KindHandler:
    """Register a kind handler; raises ``ValidationError`` if the kind exists (unless ``replace``)."""
    if handler.kind in _HANDLERS and not replace:
        raise ValidationError(f"kind {handler.kind!r} is already registered", kind=handler.kind)
    _HANDLERS[handler.kind] = handler
    return handler


def find(kind: str) -> KindHandler | None:
    """The handler of ``kind``, or None."""
    return _HANDLERS.get(kind)


def get(kind: str) -> KindHandler:
    """The handler of ``kind``; raises ``ValidationError`` naming the known kinds."""
    handler = _HANDLERS.get(kind)
    if handler is None:
        raise ValidationError(f"unknown kind {kind!r}; known kinds: {', '.join(names())}", kind=kind)
    return handler


def names() -> list[str]:
    return sorted(_HANDLERS)


def schema(kind: str) -> dict:
    """The published JSON Schema of ``kind`` (raises ``ValidationError`` if unknown)."""
    return get(kind).schema


for _cls in (
    RegistryEntry,
    FunctionLua,
    FunctionPython,
    LibraryLua,
    ProcessLua,
    WorkflowLua,
    ProcessHost,
    ProcessService,
    Agent,
    Prompt,
    LlmModel,
    SecurityPolicy,
    McpServer,
    McpTool,
):
    register(_cls())
del _cls
