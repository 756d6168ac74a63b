"""A one-file app for the console tests: a scripted model, two agents, a Lua tool, policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

WEATHER = """
return {handler = function(a)
  return {city = a.city, sky = "sunny", celsius = 21}
end}
"""
SLUG_SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
SLUGIFY = """return {handler = function(a)
  local s = string.lower(a.text)
  s = string.gsub(s, "[^%w]+", "-")
  return s
end}
"""


def create_tool_call(tool_id: str) -> dict[str, Any]:
    return {"name": "create_tool", "arguments": {
        "id": tool_id, "description": "Slug of a text", "input_schema": SLUG_SCHEMA, "source": SLUGIFY,
        "examples": [{"input": {"text": "Hello World"}, "output": "hello-world"}]}}


def app_yaml(script: list[dict[str, Any]], *, coder_script: list[dict[str, Any]] | None = None,
             base_url: str | None = None) -> str:
    """``base_url``: the assistant talks to an OpenAI-compatible server there (models ``fake-a``, and
    ``fake-b`` as ``app.models:remote2`` for ``/model``) instead of the scripted model."""
    docs = [
        {"namespace": "app.security", "entries": [
            {"name": "open", "kind": "security.policy", "rules": [
                {"effect": "allow", "actions": ["tool.call", "registry.read", "lua.module"], "resources": ["*"]},
                {"effect": "allow", "actions": ["registry.write"], "resources": ["app.review:*"],
                 "approval": "ask"},
            ]},
        ]},
        {"namespace": "app.models", "entries": [
            {"name": "m", "kind": "llm.model", "provider": "scripted", "model": "scripted-1",
             "context_window": 100000, "script": script,
             "input_price": 1.0, "output_price": 2.0},
            {"name": "c", "kind": "llm.model", "provider": "scripted", "model": "scripted-c",
             "context_window": 100000, "script": coder_script or [{"text": "coder here"}]},
            *([{"name": "remote", "kind": "llm.model", "provider": "openai_compatible", "model": "fake-a",
                "base_url": base_url, "context_window": 100000, "input_price": 1.0, "output_price": 2.0},
               {"name": "remote2", "kind": "llm.model", "provider": "openai_compatible", "model": "fake-b",
                "base_url": base_url, "context_window": 100000}] if base_url else []),
        ]},
        {"namespace": "app.tools", "entries": [
            {"name": "weather", "kind": "function.lua", "meta": {"type": "tool", "description": "Weather for a city"},
             "source": WEATHER, "method": "handler",
             "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        ]},
        {"namespace": "app.agents", "entries": [
            {"name": "assistant", "kind": "agent", "meta": {"description": "General helper"},
             "model": "app.models:remote" if base_url else "app.models:m", "prompt": "You help.",
             "tools": ["app.tools:*", "wippy.self:create_tool"], "policies": ["app.security:open"],
             "delegates": [{"id": "app.agents:coder", "name": "ask_coder", "description": "Writes Lua"}],
             "max_turns": 8},
            {"name": "coder", "kind": "agent", "meta": {"description": "Writes Lua"}, "model": "app.models:c",
             "prompt": "You code.", "tools": ["app.tools:*"], "policies": ["app.security:open"]},
        ]},
    ]
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def write_app(root: Path, script: list[dict[str, Any]], **kw: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "app.yaml"
    path.write_text(app_yaml(script, **kw), encoding="utf-8")
    return path
