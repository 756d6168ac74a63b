"""An app for the tracing tests: agent a calls a Lua tool (which calls another through funcs.call) and delegates to b."""

from __future__ import annotations

import yaml

OPEN = [{"effect": "allow", "actions": ["tool.call", "lua.module", "registry.*", "agent.run"], "resources": ["*"]}]


SCRIPT_A = [{"tool_calls": [{"name": "double", "arguments": {"x": 21}}]},
            {"tool_calls": [{"name": "ask_b", "arguments": {"task": "say hi"}}]},
            {"text": "42, and b says hi"}]


def traced_app(script_a: list | None = None, tools_a: list | None = None) -> str:
    docs = [
        {"namespace": "app.security", "entries": [{"name": "open", "kind": "security.policy", "rules": OPEN}]},
        {"namespace": "app.models", "entries": [
            {"name": "m", "kind": "llm.model", "provider": "scripted", "model": "scripted-a", "context_window": 100000,
             "script": script_a or SCRIPT_A},
            {"name": "mb", "kind": "llm.model", "provider": "scripted", "model": "scripted-b", "context_window": 100000,
             "script": [{"text": "hi"}]}]},
        {"namespace": "app.tools", "entries": [
            {"name": "double", "kind": "function.lua", "meta": {"type": "tool", "description": "Double x"},
             "modules": ["funcs"], "idempotent": True,
             "input_schema": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]},
             "source": "return {handler = function(a) return funcs.call('app.tools:add', {x = a.x, y = a.x}) end}"},
            {"name": "add", "kind": "function.lua", "source": "return {handler = function(a) return a.x + a.y end}"}]},
        {"namespace": "app.agents", "entries": [
            {"name": "a", "kind": "agent", "model": "app.models:m", "prompt": "Work.", "tools": ["app.tools:double", *(tools_a or [])],
             "delegates": [{"id": "app.agents:b", "name": "ask_b", "description": "Ask b"}],
             "policies": ["app.security:open"]},
            {"name": "b", "kind": "agent", "model": "app.models:mb", "prompt": "Be b.", "policies": ["app.security:open"]}]},
    ]
    return "\n---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def tree(spans) -> list[str]:
    """``  name`` lines, indented by depth, children in start order (for asserts and the README)."""
    by_parent: dict = {}
    ids = {s.context.span_id for s in spans}
    for s in spans:
        parent = s.parent.span_id if s.parent is not None and s.parent.span_id in ids else None
        by_parent.setdefault(parent, []).append(s)
    out: list[str] = []

    def walk(parent, depth):
        for s in sorted(by_parent.get(parent, []), key=lambda s: (s.start_time, s.name)):
            mark = " (replayed)" if s.attributes.get("wippy.step.replayed") else ""
            out.append("  " * depth + s.name + mark)
            walk(s.context.span_id, depth + 1)

    walk(None, 0)
    return out
