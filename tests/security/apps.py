"""A one-file app with policies of different strength, for the security and self-modification tests."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from typing import Any

import yaml

from wippy_agents.agents import ToolCallContext, dispatch_tool
from wippy_agents.app import App

SLUGIFY = """
return {handler = function(a)
  local s = string.lower(a.text)
  s = string.gsub(s, "[^%w]+", "-")
  s = string.gsub(s, "^%-+", "")
  s = string.gsub(s, "%-+$", "")
  return s
end}
"""
SPAWNER = """return {handler = function(a)
  local pid, err = process.spawn("app.procs:worker", "app.procs:host")
  if pid == nil then return "refused: " .. tostring(err) end
  return "spawned"
end}"""
SLUGIFY_BROKEN = "return {handler = function(a) return string.lower(a.text end}"
SLUG_SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
SLUG_EXAMPLES = [
    {"input": {"text": "Hello World"}, "output": "hello-world"},
    {"input": {"text": "  Wippy: agents!  "}, "output": "wippy-agents"},
    {"input": {"text": "a__b"}, "output": "a-b"},
]

POLICIES: list[dict[str, Any]] = [
    # A toolsmith: writes tools under app.generated, may use json/time/log, never http.
    {"name": "toolsmith", "kind": "security.policy", "rules": [
        {"effect": "allow", "actions": ["tool.call"], "resources": ["wippy.self:*", "app.tools:*", "app.generated:*"]},
        {"effect": "allow", "actions": ["registry.read"], "resources": ["*"]},
        {"effect": "allow", "actions": ["registry.write"], "resources": ["app.generated:*", "app.prompts:*",
                                                                          "app.agents:gen_*"]},
        {"effect": "allow", "actions": ["lua.module"],
         "resources": ["json", "time", "log", "registry", "funcs", "security"]},
        {"effect": "deny", "actions": ["lua.module"], "resources": ["http"]},
    ]},
    # A reader: calls tools and reads, writes nothing.
    {"name": "reader", "kind": "security.policy", "rules": [
        {"effect": "allow", "actions": ["tool.call"], "resources": ["*"]},
        {"effect": "allow", "actions": ["registry.read"], "resources": ["*"]},
    ]},
    # An admin: everything, including registry writes anywhere.
    {"name": "admin", "kind": "security.policy", "rules": [
        {"effect": "allow", "actions": ["*"], "resources": ["*"]},
    ]},
    # Not referenced by any agent (deleting it must still be refused to agents).
    {"name": "spare", "kind": "security.policy", "rules": [
        {"effect": "deny", "actions": ["http.request"], "resources": ["*"]},
    ]},
    {"name": "nohttp", "kind": "security.policy", "rules": [
        {"effect": "deny", "actions": ["http.request"], "resources": ["*"]},
    ]},
    # A reviewer-gated writer: writes under app.review only after a person approves.
    {"name": "asker", "kind": "security.policy", "rules": [
        {"effect": "allow", "actions": ["tool.call", "registry.read", "lua.module"], "resources": ["*"]},
        {"effect": "allow", "actions": ["registry.write"], "resources": ["app.review:*"], "approval": "ask"},
    ]},
]


def agent(name: str, policies: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "agent", "model": "app.models:m", "prompt": f"You are {name}.",
            "tools": ["wippy.self:*", "app.tools:*", "app.generated:*"], "policies": policies, "max_turns": 8, **extra}


def app_yaml(script: list[dict] | None = None, *, extra_docs: list[dict] | None = None) -> str:
    docs = [
        {"namespace": "app.security", "entries": POLICIES},
        {"namespace": "app.models", "entries": [{"name": "m", "kind": "llm.model", "provider": "scripted",
                                                 "context_window": 100000, "script": script or [{"text": "ok"}]}]},
        {"namespace": "app.prompts", "entries": [{"name": "admin", "kind": "prompt", "text": "You administer."}]},
        {"namespace": "app.tools", "entries": [
            {"name": "upper", "kind": "function.lua", "meta": {"type": "tool", "description": "Upper-case text"},
             "source": "return {handler = function(a) return string.upper(a.text) end}", "input_schema": SLUG_SCHEMA},
        ]},
        {"namespace": "app.admin", "entries": [
            {"name": "secret", "kind": "function.lua", "meta": {"type": "tool", "description": "Admin only"},
             "source": "return {handler = function(a) return 'secret' end}", "input_schema": {"type": "object"}},
            {"name": "runner", "kind": "function.lua", "meta": {"type": "tool", "description": "Runs an agent"},
             "modules": ["agent"], "input_schema": {"type": "object"},
             "source": "return {handler = function(a) return agent.run(a.agent, 'do it') end}"},
        ]},
        {"namespace": "app.procs", "entries": [
            {"name": "host", "kind": "process.host"},
            {"name": "worker", "kind": "process.lua", "method": "main",
             "source": "return {main = function() return 1 end}"},
            {"name": "spawner", "kind": "function.lua", "meta": {"type": "tool", "description": "Spawns a worker"},
             "input_schema": {"type": "object"}, "source": SPAWNER},
        ]},
        {"namespace": "app.agents", "entries": [
            agent("smith", ["app.security:toolsmith"]),
            agent("reader", ["app.security:reader"]),
            agent("admin", ["app.security:admin"], prompt="app.prompts:admin"),
            agent("asker", ["app.security:asker"]),
            agent("modeler", ["app.security:admin", "app.security:nohttp"]),
        ]},
        *(extra_docs or []),
    ]
    return "\n---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


async def open_app(tmp_path: Path, text: str | None = None, *, store: str | None = None, **kw: Any) -> App:
    path = tmp_path / "app.yaml"
    if text is not None or not path.exists():
        path.write_text(textwrap.dedent(text or app_yaml()), encoding="utf-8")
    return await App.open(path, store=store or f"sqlite:///{tmp_path / 'state.db'}", **kw)


_CALLS = itertools.count(1)


def actor_of(app: App, agent_id: str, task_id: str | None = "t1") -> Any:
    entry = app.entry(agent_id)
    return app.security.agent_actor(agent_id=agent_id, policies=entry.data.get("policies", []),
                                                  task_id=task_id)


async def self_tool(app: App, name: str, args: dict, *, agent: str = "app.agents:smith", task_id: str | None = "t1",
                    call_id: str | None = None) -> Any:
    """Call ``wippy.self:<name>`` as ``agent`` through the tool dispatcher (the agent loop's path)."""
    ctx = ToolCallContext(app=app, actor=actor_of(app, agent, task_id), task_id=task_id, agent_id=agent,
                          call_id=call_id or f"c-{name}-{next(_CALLS)}")
    return await dispatch_tool(app, app.entry(f"wippy.self:{name}"), args, ctx)


def slug_args(**over: Any) -> dict[str, Any]:
    return {"id": "app.generated:slugify", "description": "Turn text into a URL slug", "input_schema": SLUG_SCHEMA,
            "source": SLUGIFY, "examples": SLUG_EXAMPLES, **over}
