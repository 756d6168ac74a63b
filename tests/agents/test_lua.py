"""Lua modules llm and agent, and Lua agents (kind: agent with source) on the journal."""

from __future__ import annotations

import pytest

from wippy_agents.errors import LuaError


POLICY = """
namespace: app.security
entries:
  - name: open
    kind: security.policy
    rules: [{effect: allow, actions: [tool.call, lua.module, registry.read], resources: ["*"]}]
"""

MODELS = """
namespace: app.models
entries:
  - name: m
    kind: llm.model
    provider: scripted
    script:
      - {text: "hello from the model", chunks: ["hello ", "from ", "the model"]}
      - {text: "not json at all"}
      - {text: "```json\\n{\\"city\\": \\"Lisbon\\", \\"days\\": 3}\\n```"}
      - {text: "fine", tool_calls: [{name: add, arguments: {x: 1, y: 2}}]}
"""

FUNCS = """
namespace: app.fn
entries:
  - name: gen
    kind: function.lua
    modules: [llm]
    source: |
      return {handler = function(a)
        local r, err = llm.generate(a.prompt, {model = "app.models:m", system = "be brief"})
        if not r then return nil, err end
        return r.text
      end}
  - name: streamed
    kind: function.lua
    modules: [llm]
    source: |
      return {handler = function(a)
        local next_chunk, reply = llm.stream(a.prompt, {model = "app.models:m"})
        local parts = {}
        for chunk in next_chunk do parts[#parts + 1] = chunk end
        return {parts = parts, text = reply.text}
      end}
  - name: structured
    kind: function.lua
    modules: [llm]
    source: |
      return {handler = function(a)
        return llm.structured(a.prompt, {type = "object", required = {"city", "days"},
          properties = {city = {type = "string"}, days = {type = "integer"}}}, {model = "app.models:m"})
      end}
"""


async def test_llm_generate_stream_and_structured_from_lua(make_app):
    app = await make_app("\n---\n".join([POLICY, MODELS, FUNCS]))
    assert await app.call("app.fn:streamed", {"prompt": "hi"}) == {
        "parts": ["hello ", "from ", "the model"], "text": "hello from the model"}
    # the first structured attempt is not JSON: the model is told why and answers again
    assert await app.call("app.fn:structured", {"prompt": "trip?"}) == {"city": "Lisbon", "days": 3}
    model = app.agents.provider_for("app.models:m")
    retry = model.calls[2].messages
    assert retry[0].role == "system" and "JSON Schema" in retry[0].content
    assert retry[-1].role == "user" and "That does not match the schema: the reply is not JSON" in retry[-1].content
    reply_with_call = await app.call("app.fn:gen", {"prompt": "add"})
    assert reply_with_call == "fine"


async def test_llm_needs_a_model_and_reports_it_as_nil_err(make_app):
    bad = FUNCS.replace('{model = "app.models:m", system = "be brief"}', '{system = "be brief"}')
    app = await make_app("\n---\n".join([POLICY, MODELS, bad]))
    with pytest.raises(LuaError, match=r'say which model to use'):
        await app.call("app.fn:gen", {"prompt": "x"})


LUA_AGENT = """
namespace: app.agents
entries:
  - name: planner
    kind: agent
    model: app.models:m
    policies: [app.security:open]
    modules: [llm, funcs, agent]
    source: |
      return {handler = function(input)
        local r, err = llm.generate(input.prompt)
        if not r then return nil, err end
        local call = r.tool_calls[1]
        local sum, err2 = funcs.call("app.tools:" .. call.name, call.arguments)
        if not sum then return nil, err2 end
        local sub, err3 = agent.run("app.agents:echoer", "say " .. sum)
        if not sub then return nil, err3 end
        return {answer = r.text .. " / " .. sum .. " / " .. sub.answer}
      end}
  - name: echoer
    kind: agent
    model: app.models:e
    prompt: "You echo."
    policies: [app.security:open]
---
namespace: app.models
entries:
  - name: m
    kind: llm.model
    provider: scripted
    script: [{text: "plan", tool_calls: [{name: add, arguments: {x: 1, y: 2}}]}]
  - name: e
    kind: llm.model
    provider: scripted
    script: [{text: "echo 3"}]
---
namespace: app.tools
entries:
  - name: add
    kind: function.lua
    meta: {type: tool, description: add}
    idempotent: true
    source: "return {handler = function(a) return a.x + a.y end}"
    input_schema: {type: object}
"""


async def test_a_lua_agent_drives_llm_funcs_and_agent_as_journaled_steps(make_app, tmp_path):
    app = await make_app("\n---\n".join([POLICY, LUA_AGENT]))
    result = await app.agents.run("app.agents:planner", "plan it", task_id="lua-1", timeout=30)
    assert (result.answer, result.stop_reason) == ("plan / 3 / echo 3", "final")
    steps = [s.name for s in await app.store.journal_load("lua-1")]
    assert steps == ["llm", "call:app.tools:add", "agent:app.agents:echoer"]
    children = [t for t in await app.store.task_list() if t.parent_id == "lua-1"]
    assert [c.target for c in children] == ["app.agents:echoer"]


async def test_a_finished_lua_agent_task_is_not_run_again(make_app, tmp_path):
    app = await make_app("\n---\n".join([POLICY, LUA_AGENT]))
    first = await app.agents.run("app.agents:planner", "plan it", task_id="lua-2", timeout=30)
    again = await app.agents.run("app.agents:planner", "plan it", task_id="lua-2", timeout=30)
    assert again == first
    assert len(app.agents.provider_for("app.models:m").calls) == 1
