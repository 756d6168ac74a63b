"""The wippy.self tools driven directly (the agent loop's dispatch path): validation before anything
goes live, one version per write with who and why, persistence, rollback, idempotent re-runs."""

from __future__ import annotations

import pytest

from wippy_agents.agents import ToolCallContext, dispatch_tool
from wippy_agents.agents.selfmod import SELF_TOOLS
from wippy_agents.errors import EntryNotFound, ToolError

from ..security.apps import SLUG_EXAMPLES, SLUG_SCHEMA, SLUGIFY, SLUGIFY_BROKEN, actor_of, open_app, self_tool, slug_args


@pytest.fixture
async def app(tmp_path):
    app = await open_app(tmp_path)
    yield app
    await app.close()


def test_the_self_tools_are_builtin_entries(tmp_path):
    from wippy_agents.agents import builtin_entries

    ids = {str(e.id) for e in builtin_entries()}
    assert set(SELF_TOOLS) <= ids
    assert {i.split(":")[1] for i in SELF_TOOLS} == {"find_entries", "get_entry", "create_tool", "update_tool",
                                                     "update_entry", "delete_entry", "history", "rollback",
                                                     "create_agent"}


async def test_create_tool_makes_one_live_version_with_author_and_reason(app):
    before = app.registry.version
    result = await self_tool(app, "create_tool", slug_args(), call_id="call-7")
    assert result == {"id": "app.generated:slugify", "version": before + 1}
    assert app.registry.version == before + 1
    assert await app.call("app.generated:slugify", {"text": "Self Modifying Code"}) == "self-modifying-code"
    [record] = await app.registry.history(limit=1)
    assert record.author == "agent:app.agents:smith/t1"
    assert "create_tool app.generated:slugify" in record.reason and "[call t1/call-7]" in record.reason
    assert [c["id"] for c in record.changes] == ["app.generated:slugify"]
    entry = app.entry("app.generated:slugify")
    assert entry.meta["type"] == "tool" and entry.meta["created_by"] == "agent:app.agents:smith/t1"
    assert entry.data["examples"] == SLUG_EXAMPLES and entry.data["run_as_policies"] == ["app.security:toolsmith"]


@pytest.mark.parametrize("override,message", [
    ({"source": SLUGIFY_BROKEN}, r"the Lua source does not compile: app.generated:slugify:1: '\)' expected near 'end'"),
    ({"input_schema": {"type": "object", "properties": {"text": {"type": "strng"}}}},
     r"input_schema is not a valid JSON Schema at properties/text/type: 'strng' is not valid"),
    ({"input_schema": {"type": "string"}}, r"input_schema must describe an object"),
    ({"id": "app.tools:upper"}, r"'app.tools:upper' already exists \(a function.lua\); choose another id or use "
                                r"update_tool"),
    ({"id": "wippy.self:slug"}, r"reserved namespace 'wippy.self'"),
    ({"id": "slugify"}, r"id must be a full entry id 'namespace:name'"),
    ({"source": "return {handler = function(a) while true do end end}"},
     r"example 1 \(input \{\"text\": \"Hello World\"\}\) exceeded a limit: .*instruction"),
    ({"source": "return {handler = function(a) local t = {} for i = 1, 64 do t[i] = string.rep(a.text, 1 << 20) "
                "end return #t end}"}, r"example 1 .* exceeded a limit: .*memory"),
    ({"modules": ["http"]}, r"module 'http' is not allowed for this tool"),
    ({"modules": ["sockets"]}, r"unknown Lua module\(s\) \['sockets'\]"),
    ({"examples": [SLUG_EXAMPLES[0], {"input": {"text": "a b"}, "output": "a_b"}]},
     r"example 2 \(input \{\"text\": \"a b\"\}\): expected \"a_b\", got \"a-b\"\. Fix the code \(or the example\)"),
    ({"examples": [{"input": {"txt": "x"}, "output": "x"}]},
     r"example 1: input \{\"txt\": \"x\"\} does not match input_schema: 'text' is a required property"),
    ({"source": "return {handler = function(a) error('boom: ' .. a.text) end}"},
     r"example 1 \(input .*\) failed: .*boom: Hello World"),
    ({"method": "run"}, r"example 1 .* failed: .*run"),
])
async def test_bad_input_is_a_precise_tool_error_and_nothing_is_applied(app, override, message):
    before = app.registry.version
    with pytest.raises(ToolError, match=message):
        await self_tool(app, "create_tool", slug_args(**override))
    assert app.registry.version == before
    assert app.registry.get("app.generated:slugify") is None


async def test_examples_run_without_side_effects(app):
    source = """return {handler = function(a)
      local c = registry.snapshot():changes()
      c:create{id = "app.generated:side", kind = "registry.entry", meta = {}}
      local v, err = c:apply()
      if v == nil then error(err) end
      return "done"
    end}"""
    with pytest.raises(ToolError, match=r"example 1 .* failed: .*registry.write is not available here"):
        await self_tool(app, "create_tool", slug_args(source=source, modules=["registry"],
                                                      examples=[{"input": {"text": "x"}, "output": "done"}]))
    assert app.registry.get("app.generated:side") is None


async def test_update_tool_then_rollback_restores_the_first_version(app):
    created = await self_tool(app, "create_tool", slug_args())
    upper = SLUGIFY.replace("string.lower", "string.upper").replace("[^%w]+", "[^%w]+")
    with pytest.raises(ToolError, match="expected \"hello-world\", got \"HELLO-WORLD\""):
        await self_tool(app, "update_tool", slug_args(source=upper))
    examples = [{"input": {"text": "Hello World"}, "output": "HELLO-WORLD"}]
    updated = await self_tool(app, "update_tool", slug_args(source=upper, examples=examples))
    assert updated["version"] == created["version"] + 1
    assert await app.call("app.generated:slugify", {"text": "a b"}) == "A-B"
    meta = app.entry("app.generated:slugify").meta
    assert (meta["created_by"], meta["updated_by"]) == ("agent:app.agents:smith/t1", "agent:app.agents:smith/t1")
    back = await self_tool(app, "rollback", {"version": created["version"]})
    assert back["version"] == updated["version"] + 1
    assert await app.call("app.generated:slugify", {"text": "a b"}) == "a-b"
    with pytest.raises(ToolError, match="there is no Lua tool 'app.generated:nope' to update"):
        await self_tool(app, "update_tool", slug_args(id="app.generated:nope"))


async def test_rollback_removes_a_tool_and_its_callers_get_a_clear_error(app):
    before = app.registry.version
    await self_tool(app, "create_tool", slug_args())
    caller = {"id": "app.generated:caller", "description": "calls slugify", "input_schema": SLUG_SCHEMA,
              "modules": ["funcs"], "source": """return {handler = function(a)
                 local r, err = funcs.call("app.generated:slugify", a)
                 if r == nil then return "error: " .. tostring(err) end
                 return r end}""",
              "examples": [{"input": {"text": "A B"}, "output": "a-b"}]}
    await self_tool(app, "create_tool", caller)
    stale = app.entry("app.generated:slugify")
    # Roll back to before slugify: the caller is gone too, so recreate just the caller afterwards.
    await self_tool(app, "rollback", {"version": before})
    assert app.registry.get("app.generated:slugify") is None
    with pytest.raises(EntryNotFound, match="'app.generated:slugify' not found"):
        await app.call("app.generated:slugify", {"text": "x"})
    await self_tool(app, "create_tool", {**caller, "examples": []})
    assert (await app.call("app.generated:caller", {"text": "x"})).startswith("error: ")
    assert "app.generated:slugify" in await app.call("app.generated:caller", {"text": "x"})
    # Code already holding the removed entry still runs what it has (nothing crashes); the agent
    # loop re-reads its tools every turn, so a model no longer sees it (test_selfmod_e2e).
    out = await dispatch_tool(app, stale, {"text": "Q"}, ToolCallContext(app=app, actor=actor_of(app, "app.agents:smith")))
    assert out == "q"


async def test_a_restart_keeps_the_tool(tmp_path, store_url):
    app = await open_app(tmp_path, store=store_url)
    try:
        result = await self_tool(app, "create_tool", slug_args())
    finally:
        await app.close()
    again = await open_app(tmp_path, store=store_url)
    try:
        assert again.entry("app.generated:slugify").data["run_as_policies"] == ["app.security:toolsmith"]
        assert await again.call("app.generated:slugify", {"text": "Still Here"}) == "still-here"
        assert any(r.version == result["version"] for r in await again.registry.history())
    finally:
        await again.close()


async def test_a_rerun_of_the_same_call_applies_nothing_twice(app):
    first = await self_tool(app, "create_tool", slug_args(), call_id="c1")
    again = await self_tool(app, "create_tool", slug_args(), call_id="c1")
    assert again == first and app.registry.version == first["version"]
    with pytest.raises(ToolError, match="already exists"):  # a different call is a different write
        await self_tool(app, "create_tool", slug_args(), call_id="c2")
    upd = await self_tool(app, "update_tool", slug_args(description="Slugs"), call_id="c3")
    assert await self_tool(app, "update_tool", slug_args(description="Slugs"), call_id="c3") == upd
    gone = await self_tool(app, "delete_entry", {"id": "app.generated:slugify"}, call_id="c4")
    assert await self_tool(app, "delete_entry", {"id": "app.generated:slugify"}, call_id="c4") == gone
    back = await self_tool(app, "rollback", {"version": first["version"]}, call_id="c5")
    assert await self_tool(app, "rollback", {"version": first["version"]}, call_id="c5") == back
    edit = await self_tool(app, "update_entry", {"id": "app.generated:slugify", "changes": {"idempotent": True}},
                           call_id="c6")
    assert await self_tool(app, "update_entry", {"id": "app.generated:slugify", "changes": {"idempotent": True}},
                           call_id="c6") == edit
    assert app.registry.version == edit["version"]


async def test_reading_tools_respect_registry_read(app):
    found = await self_tool(app, "find_entries", {"kind": "function.lua"})
    assert {"id": "app.tools:upper", "kind": "function.lua", "description": "Upper-case text"} in found
    got = await self_tool(app, "get_entry", {"id": "app.tools:upper"})
    assert got["data"]["input_schema"] == SLUG_SCHEMA
    with pytest.raises(ToolError, match="there is no entry 'app.tools:nope'"):
        await self_tool(app, "get_entry", {"id": "app.tools:nope"})
    await self_tool(app, "create_tool", slug_args())
    hist = await self_tool(app, "history", {"id": "app.generated:slugify"})
    assert [h["changes"] for h in hist] == [[{"op": "create", "id": "app.generated:slugify"}]]
    assert hist[0]["author"] == "agent:app.agents:smith/t1"
    # asker may read; an agent with no registry.read gets a refusal (audited)
    app_text_policy_free = await self_tool(app, "find_entries", {"pattern": "app.tools:*"}, agent="app.agents:asker")
    assert [e["id"] for e in app_text_policy_free] == ["app.tools:upper"]


async def test_create_agent_makes_a_helper_that_can_be_delegated_to(app):
    made = await self_tool(app, "create_agent", {"id": "app.agents:gen_slugger", "description": "Makes slugs",
                                                 "prompt": "You make slugs.", "model": "app.models:m",
                                                 "tools": ["app.generated:*"], "policies": ["app.security:toolsmith"]})
    entry = app.entry("app.agents:gen_slugger")
    assert made == {"id": "app.agents:gen_slugger", "version": app.registry.version}
    assert entry.meta["created_by"] == "agent:app.agents:smith/t1"
    assert entry.data["policies"] == ["app.security:toolsmith"]
    with pytest.raises(ToolError, match="already exists"):
        await self_tool(app, "create_agent", {"id": "app.agents:gen_slugger", "description": "again",
                                              "prompt": "x", "model": "app.models:m"})


async def test_examples_cannot_start_agents(app):
    source = """return {handler = function(a)
      local r, err = agent.run("app.agents:reader", "hello")
      if r == nil then error(err) end
      return "ran"
    end}"""
    with pytest.raises(ToolError, match=r"example 1 .* failed: .*agent.run is not available here"):
        await self_tool(app, "create_tool", slug_args(id="app.review:starter", source=source, modules=["agent"],
                                                      examples=[{"input": {"text": "x"}, "output": "ran"}]),
                        agent="app.agents:asker", call_id="agent-example")
