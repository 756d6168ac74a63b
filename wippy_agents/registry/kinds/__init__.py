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
from .code import FunctionLua, LibraryLua, ProcessLua, WorkflowLua
from .config import RegistryEntry, SecurityPolicy
from .file_schema import file_schema as _file_schema
from .mcp import MCP_KINDS, McpServer, McpTool
from .python import FunctionPython
from .services import ProcessHost, ProcessService

__all__ = [
    "KindHandler",
    "Ref",
    "RefField",
    "MCP_KINDS",
    "register",
    "unregister",
    "get",
    "find",
    "names",
    "call_mode",
    "holds_code",
    "is_tool_kind",
    "runs_as_creator",
    "schema",
    "entry_file_schema",
    "tool_visible_name",
]

_HANDLERS: dict[str, KindHandler] = {}


def register(handler: KindHandler, *, replace: bool = False) -> KindHandler:
    """Register a kind handler; raises ``ValidationError`` if the kind exists (unless ``replace``)."""
    if handler.kind in _HANDLERS and not replace:
        raise ValidationError(f"kind {handler.kind!r} is already registered", kind=handler.kind)
    _HANDLERS[handler.kind] = handler
    return handler


def unregister(kind: str) -> KindHandler | None:
    """Remove a kind registered by another layer or a test; returns its handler (None if absent)."""
    return _HANDLERS.pop(kind, None)


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


# The traits other layers ask about an entry's kind (an unknown kind has none).
def call_mode(kind: str) -> str | None:
    """How ``funcs.call``/``wippy call`` runs an entry of ``kind``: "lua", "python", "workflow" or None."""
    handler = _HANDLERS.get(kind)
    return handler.call_mode if handler is not None else None


def is_tool_kind(kind: str) -> bool:
    """Whether an entry of ``kind`` may be a tool (it still needs ``meta.type: tool``)."""
    handler = _HANDLERS.get(kind)
    return handler is not None and handler.tool_capable


def holds_code(kind: str) -> bool:
    """Whether entries of ``kind`` hold Lua source (``code_fields``)."""
    handler = _HANDLERS.get(kind)
    return handler is not None and bool(handler.code_fields)


def runs_as_creator(kind: str) -> bool:
    """Whether code of ``kind`` runs narrowed to its writer's policies (stamped when written)."""
    handler = _HANDLERS.get(kind)
    return handler is not None and handler.runs_as_creator


def schema(kind: str) -> dict:
    """The published JSON Schema of ``kind`` (raises ``ValidationError`` if unknown)."""
    return get(kind).schema


def entry_file_schema() -> dict:
    """The published JSON Schema of a whole entry file (every registered kind)."""
    return _file_schema(_HANDLERS.values())


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
