"""Agents: the agent spec, the turn loop as a durable task, tools and delegation.

The tool interface (``python_tool``, ``ToolCallContext``, ``dispatch_tool``)
is what the self-modification tools (``wippy.self:*``) are built on.
"""

from ..errors import ToolError
from .tools import (
    BUILTIN_TOOL_MODULES,
    TOOL_KINDS,
    PythonTool,
    ToolCallContext,
    builtin_entries,
    dispatch_tool,
    python_tool,
    python_tools,
    validate_arguments,
)

__all__ = [
    "BUILTIN_TOOL_MODULES",
    "TOOL_KINDS",
    "PythonTool",
    "ToolCallContext",
    "ToolError",
    "builtin_entries",
    "dispatch_tool",
    "python_tool",
    "python_tools",
    "validate_arguments",
]
