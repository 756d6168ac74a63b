"""``wippy mcp serve``: the app's tools and agents as an MCP server over stdio, under one policy.

What is offered: every ``function.lua`` entry with ``meta.type: tool`` whose id
matches ``--tools`` (a glob; default all) and that the policy lets the client
call (``tool.call``), plus each ``--agent`` as a tool ``{task}`` that runs the
agent as a durable task and answers with its final answer. The listing is
read from the live registry at every ``tools/list``, so a tool registered
while serving appears on the client's next listing.

Every call is checked again when it is made: outside ``--tools`` it is
refused as unknown; a policy refusal is audited and comes back as an error
result the client's model can read. The client acts as ``mcp:serve`` with
only the named policy; an agent it starts acts with the agent's own policies.

>>> await serve_stdio(app, policy="app.security:mcp", tools="app.tools:*")   # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from ..agents.tools import ToolCallContext, dispatch_tool
from ..errors import ToolError, UsageError, WippyError
from ..registry import Entry
from ..registry.ids import id_matches
from ..registry.kinds import tool_visible_name
from ..security.actor import Actor

__all__ = ["Exposed", "build_server", "serve_stdio", "AGENT_TOOL_SCHEMA"]

log = logging.getLogger(__name__)

AGENT_TOOL_SCHEMA = {
    "type": "object",
    "properties": {"task": {"type": "string", "description": "what the agent should do, in full"}},
    "required": ["task"],
    "additionalProperties": False,
}
_EXPOSED_KINDS = ("function.lua",)


@dataclass(kw_only=True)
class Exposed:
    """What one ``mcp serve`` offers: the app, the client's actor, the tool glob and the agents."""

    app: Any
    policy: str
    tools: str | None = None
    agents: tuple[str, ...] = ()
    actor: Actor = field(init=False)

    def __post_init__(self) -> None:
        entry = self.app.registry.get(self.policy)
        if entry is None or entry.kind != "security.policy":
            raise UsageError(f"--policy {self.policy!r} is not a security.policy entry; "
                             "`wippy registry list --kind security.policy` shows them")
        for agent_id in self.agents:
            agent = self.app.registry.get(agent_id)
            if agent is None or agent.kind != "agent":
                raise UsageError(f"--agent {agent_id!r} is not an agent entry")
        self.actor = Actor(id="mcp:serve", kind="cli", policies=(self.policy,))

    def _security(self) -> Any:
        return self.app.security

    def allowed(self, entry_id: str) -> bool:
        security = self._security()
        return security is not None and security.check(self.actor, "tool.call", entry_id).allowed

    def tool_entries(self) -> dict[str, Entry]:
        """Visible name -> tool entry, for the tools matching ``--tools`` that the policy allows."""
        out: dict[str, Entry] = {}
        for entry in self._candidates():
            if entry.meta.get("type") != "tool":
                continue
            if self.tools and not id_matches(str(entry.id), self.tools):
                continue
            if self.allowed(str(entry.id)):
                out.setdefault(tool_visible_name(entry), entry)
        return out

    def agent_names(self) -> dict[str, Entry]:
        out: dict[str, Entry] = {}
        for agent_id in self.agents:
            entry = self.app.registry.get(agent_id)
            if entry is not None and self.allowed(agent_id):
                out[entry.id.name] = entry
        return out

    def listing(self) -> list[dict[str, Any]]:
        """``[{name, description, inputSchema}]`` as ``tools/list`` answers."""
        tools = [{"name": name, "description": str(e.meta.get("description") or ""),
                  "inputSchema": dict(e.data.get("input_schema") or {"type": "object", "properties": {}})}
                 for name, e in self.tool_entries().items()]
        for name, e in self.agent_names().items():
            if any(t["name"] == name for t in tools):
                log.warning("mcp serve: agent %s is named like a tool; not offered", e.id)
                continue
            tools.append({"name": name, "description": str(e.meta.get("description") or f"Run the agent {e.id}"),
                          "inputSchema": AGENT_TOOL_SCHEMA})
        return tools

    async def call(self, name: str, args: Any) -> Any:
        """Run the tool or agent ``name``; raises ``ToolError`` with a message for the client."""
        agent = next((e for n, e in self.agent_names().items() if n == name), None)
        entry = self.tool_entries().get(name)
        if entry is None and agent is None:
            target = self._refused_target(name)
            if target is not None:  # it exists but the policy says no: audited, like any refusal
                await dispatch_tool(self.app, target, args, ToolCallContext(app=self.app, actor=self.actor))
            raise ToolError(f"unknown tool {name!r}: this server offers {', '.join(t['name'] for t in self.listing())}")
        if entry is not None:
            return await dispatch_tool(self.app, entry, args, ToolCallContext(app=self.app, actor=self.actor))
        assert agent is not None
        from ..agents.tools import validate_arguments

        validate_arguments(name, AGENT_TOOL_SCHEMA, args)
        try:
            result = await self.app.agents.run(str(agent.id), args["task"])
        except WippyError as exc:
            raise ToolError(f"agent {str(agent.id)!r} failed: {exc}") from None
        if not result.ok:
            raise ToolError(f"agent {str(agent.id)!r} stopped ({result.stop_reason}): {result.detail}")
        return {"answer": result.answer, "task_id": result.task_id, "turns": result.turns}

    def _candidates(self) -> list[Entry]:
        return [e for kind in _EXPOSED_KINDS for e in self.app.registry.find(kind=kind)]

    def _refused_target(self, name: str) -> Entry | None:
        for entry in self._candidates():
            if entry.meta.get("type") == "tool" and tool_visible_name(entry) == name:
                if not self.tools or id_matches(str(entry.id), self.tools):
                    return entry
        return None


def build_server(exposed: Exposed) -> Any:
    """The SDK's low-level ``Server`` answering ``tools/list`` and ``tools/call`` from ``exposed``."""
    import mcp_types as types
    from mcp.server.lowlevel import Server

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=[types.Tool(name=t["name"], description=t["description"],
                                                       input_schema=t["inputSchema"]) for t in exposed.listing()])

    async def call_tool(ctx: Any, params: Any) -> Any:
        try:
            value = await exposed.call(params.name, dict(params.arguments or {}))
        except ToolError as exc:
            return types.CallToolResult(content=[types.TextContent(type="text", text=str(exc))], is_error=True)
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        structured = value if isinstance(value, dict) else None
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=structured)

    return Server("wippy", version=_version(), on_list_tools=list_tools, on_call_tool=call_tool,
                  get_tool_input_schema=lambda name: next((t["inputSchema"] for t in exposed.listing()
                                                           if t["name"] == name), None))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wippy-agents")
    except PackageNotFoundError:
        return "0"


async def serve_stdio(app: Any, *, policy: str, tools: str | None = None, agents: tuple[str, ...] = ()) -> None:
    """Serve over this process's stdin/stdout until the client closes stdin."""
    from mcp.server.stdio import stdio_server

    server = build_server(Exposed(app=app, policy=policy, tools=tools, agents=tuple(agents)))
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())
