"""Agents: the agent spec, the turn loop as a durable task, tools and delegation.

>>> result = await app.extensions["agents"].run("app.agents:assistant", "count words in: a b c")  # doctest: +SKIP
>>> result.answer, result.stop_reason                                                              # doctest: +SKIP

The tool interface (``python_tool``, ``ToolCallContext``, ``dispatch_tool``)
is what the self-modification tools (``wippy.self:*``) are built on.
Importing this package registers the layer's ``App`` open hook (``wiring``).
"""

from ..errors import ContextOverflow, PromptError, ToolError
from .context import ContextWindow, truncate_text
from .result import STOP_REASONS, AgentResult, StopReason
from .service import AGENT_TASK_KIND, AgentService
from .spec import AgentSpec, Budget, Delegate, render_prompt
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
from .toolset import Toolset, build_toolset
from . import wiring as _wiring  # noqa: F401  (registers the open hook)

__all__ = [
    "AGENT_TASK_KIND",
    "AgentResult",
    "AgentService",
    "AgentSpec",
    "BUILTIN_TOOL_MODULES",
    "Budget",
    "ContextOverflow",
    "ContextWindow",
    "Delegate",
    "PromptError",
    "PythonTool",
    "STOP_REASONS",
    "StopReason",
    "TOOL_KINDS",
    "ToolCallContext",
    "ToolError",
    "Toolset",
    "build_toolset",
    "builtin_entries",
    "dispatch_tool",
    "python_tool",
    "python_tools",
    "render_prompt",
    "truncate_text",
    "validate_arguments",
]
