"""Agents: the agent spec, the turn loop as a durable task, tools and delegation.

>>> result = await app.agents.run("app.agents:assistant", "count words in: a b c")  # doctest: +SKIP
>>> result.answer, result.stop_reason                                                              # doctest: +SKIP

The tool interface (``python_tool``, ``ToolCallContext``, ``dispatch_tool``)
is what the self-modification tools (``wippy.self:*``) are built on.
``install(layers)`` opens the layer on a node (``App.open`` calls it).
"""

from ..errors import ContextOverflow, PromptError, ToolError
from .context import ContextWindow, truncate_text
from .result import STOP_REASONS, AgentResult, StopReason
from .service import AGENT_TASK_KIND, AgentService
from .session import SESSION_KIND, Session, SessionState, Sessions, Turn, turn_task_id
from .spec import AgentSpec, Budget, Delegate, render_prompt
from .tools import (
    BUILTIN_TOOL_MODULES,
    PythonTool,
    ToolCallContext,
    builtin_entries,
    dispatch_tool,
    python_tool,
    python_tools,
    validate_arguments,
)
from .toolset import Toolset, build_toolset
from .install import install
from .layers import NodeLayers

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
    "NodeLayers",
    "PromptError",
    "PythonTool",
    "SESSION_KIND",
    "Session",
    "SessionState",
    "Sessions",
    "Turn",
    "STOP_REASONS",
    "StopReason",
    "ToolCallContext",
    "ToolError",
    "Toolset",
    "build_toolset",
    "builtin_entries",
    "dispatch_tool",
    "install",
    "python_tool",
    "python_tools",
    "render_prompt",
    "truncate_text",
    "turn_task_id",
    "validate_arguments",
]
