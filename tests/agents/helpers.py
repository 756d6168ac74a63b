"""Build one-file apps for agent tests from Python data."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import yaml

ADD_LUA = "return {handler = function(a) return {sum = a.x + a.y} end}"
ECHO_LUA = "return {handler = function(a) return a.text end}"


def app_text(script: list[dict[str, Any]], *, agent: dict[str, Any] | None = None, tools: list[dict] | None = None,
             extra_agents: list[dict] | None = None, model: dict[str, Any] | None = None,
             prompt: str = "You are {{name}}. Use tools.") -> str:
    """A single-file app: app.models:m (scripted), app.prompts:p, app.tools:{add,echo,...}, app.agents:a."""
    docs = [
        # Default deny (SPEC §8): the test agents act through one open policy.
        {"namespace": "app.security", "entries": [{"name": "open", "kind": "security.policy", "rules": [
            {"effect": "allow", "actions": ["tool.call", "registry.*", "lua.module", "process.*"],
             "resources": ["*"]}]}]},
        {"namespace": "app.models", "entries": [{"name": "m", "kind": "llm.model", "provider": "scripted",
                                                 "context_window": 100000, "script": script, **(model or {})}]},
        {"namespace": "app.prompts", "entries": [{"name": "p", "kind": "prompt", "text": prompt,
                                                  "variables": {"name": "Tester"}}]},
        {"namespace": "app.tools", "entries": [
            {"name": "add", "kind": "function.lua", "meta": {"type": "tool", "description": "Add x and y"},
             "source": ADD_LUA, "idempotent": True,
             "input_schema": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                              "required": ["x", "y"], "additionalProperties": False}},
            {"name": "echo", "kind": "function.lua", "meta": {"type": "tool", "description": "Echo text"},
             "source": ECHO_LUA, "idempotent": True,
             "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}},
            *(tools or []),
        ]},
        {"namespace": "app.agents", "entries": [
            {"name": "a", "kind": "agent", "model": "app.models:m", "prompt": "app.prompts:p",
             "tools": ["app.tools:*"], "max_turns": 10, "policies": ["app.security:open"], **(agent or {})},
            *({"policies": ["app.security:open"], **a} for a in extra_agents or []),
        ]},
    ]
    return "\n---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


async def until(probe, ok, timeout: float = 10.0):
    """Poll ``await probe()`` until ``ok(value)``; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"condition not met in {timeout}s (last value {value!r})"
        await asyncio.sleep(0.01)
