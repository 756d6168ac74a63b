"""Run in a fresh interpreter: import every package module in a seeded random order, open an App,
and report which guarded Lua ops reached ``Security.enforce`` and what a restricted actor got.

Usage: ``python -m tests.house.guard_probe SEED APP_DIR`` — prints one JSON line.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import pkgutil
import random
import sys

PROBE = """
return {handler = function(a)
  local out = {}
  local function try(name, f)
    local ok, value, err = pcall(f)
    if not ok then out[name] = tostring(value) elseif value == nil then out[name] = tostring(err) else out[name] = "ok" end
  end
  try("funcs.call", function() return funcs.call("app.t:tool", {}) end)
  try("registry.get", function() return registry.get("app.t:tool") end)
  try("registry.apply", function()
    return registry.snapshot():changes():create({id = a.id, kind = "registry.entry", meta = {}, data = {}}):apply()
  end)
  try("llm.generate", function() return llm.generate("hi", {model = "app.t:model"}) end)
  try("llm.stream", function() return llm.stream("hi", {model = "app.t:model"}) end)
  try("agent.run", function() return agent.run("app.t:helper", "hi") end)
  try("process.spawn", function() return process.spawn("app.t:proc", "app.t:host") end)
  return out
end}
"""

APP = f"""
namespace: app.t
entries:
  - name: tool
    kind: function.lua
    meta: {{type: tool, description: "a tool"}}
    source: "return {{handler = function() return 1 end}}"
    input_schema: {{type: object}}
  - name: probe
    kind: function.lua
    modules: [funcs, registry, llm, agent]
    source: |
{chr(10).join('      ' + line for line in PROBE.strip().splitlines())}
  - name: proc
    kind: process.lua
    source: "return {{main = function() end}}"
    method: main
  - name: host
    kind: process.host
  - name: model
    kind: llm.model
    provider: scripted
    model: scripted
    script: [{{text: "hello"}}, {{text: "again"}}]
  - name: helper
    kind: agent
    model: model
    prompt: "help"
  - name: narrow
    kind: security.policy
    rules:
      - {{effect: allow, actions: ["lua.module", "registry.read"], resources: ["*"]}}
      - {{effect: deny, actions: ["tool.call", "process.spawn", "registry.write"], resources: ["*"]}}
"""


def import_everything(seed: int) -> list[str]:
    import wippy_agents

    names = [m.name for m in pkgutil.walk_packages(wippy_agents.__path__, "wippy_agents.")
             if not m.name.endswith("__main__")]
    random.Random(seed).shuffle(names)
    for name in names:
        importlib.import_module(name)
    return names


async def main(seed: int, app_dir: str) -> dict:
    order = import_everything(seed)
    from wippy_agents.app import App
    from wippy_agents.security import Actor, Security

    reached: list[str] = []
    original = Security.enforce

    async def spy(self, actor, action, resource, **kw):
        reached.append(action)
        return await original(self, actor, action, resource, **kw)

    Security.enforce = spy  # type: ignore[method-assign]
    async with await App.open(app_dir, store=f"sqlite:///{app_dir}/state.db") as app:
        entry = app.entry("app.t:probe")
        owner = await app.lua.call_function(entry, {"id": "app.gen:by_owner"})
        owner_reached = list(reached)
        reached.clear()
        narrow = Actor.agent("app.t:someone", ["app.t:narrow"])
        restricted = await app.lua.call_function(entry, {"id": "app.gen:by_narrow"}, actor=narrow)
        return {"first": order[:3], "owner": owner, "owner_reached": owner_reached, "restricted": restricted,
                "restricted_reached": list(reached)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(int(sys.argv[1]), sys.argv[2]))))
