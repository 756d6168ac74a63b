"""Permission tests: every write path is checked where the effect happens, and no path escalates.

Each test tries one way for an agent (or code it wrote) to get more than it
holds, and checks it is refused, nothing changed, and the denial is audited.
"""

from __future__ import annotations

import pytest

from wippy_agents.errors import PermissionDenied, ToolError
from wippy_agents.registry import Changeset

from .apps import SLUG_SCHEMA, SPAWNER, actor_of, open_app, self_tool, slug_args


@pytest.fixture
async def app(tmp_path):
    app = await open_app(tmp_path)
    yield app
    await app.close()


async def denials(app, resource=None):
    return [r for r in await app.store.audit_list(limit=200)
            if r.decision == "deny" and (resource is None or r.resource == resource)]


async def test_an_agent_without_registry_write_is_denied_and_audited(app):
    before = app.registry.version
    with pytest.raises(ToolError, match=r"not allowed: agent:app.agents:reader/t1 may not registry.write "
                                        r"'app.generated:slugify': no rule of app.security:reader allows it \(default deny; "
                                        r"a person can allow it in a security.policy entry\)"):
        await self_tool(app, "create_tool", slug_args(), agent="app.agents:reader")
    assert app.registry.version == before and app.registry.get("app.generated:slugify") is None
    [record] = await denials(app, "app.generated:slugify")
    assert (record.actor, record.action) == ("agent:app.agents:reader/t1", "registry.write")
    assert "default deny" in record.details["reason"]


async def test_writes_outside_the_allowed_namespace_are_denied(app):
    with pytest.raises(ToolError, match=r"may not registry.write 'app.tools:slugify'"):
        await self_tool(app, "create_tool", slug_args(id="app.tools:slugify"))
    with pytest.raises(ToolError, match=r"may not registry.write 'app.tools:upper'"):
        await self_tool(app, "update_entry", {"id": "app.tools:upper", "changes": {"source": "return {}"}})
    with pytest.raises(ToolError, match=r"may not registry.write 'app.tools:upper'"):
        await self_tool(app, "delete_entry", {"id": "app.tools:upper"})
    assert app.registry.get("app.tools:upper").data["source"].startswith("return {handler")
    assert {r.resource for r in await denials(app)} == {"app.tools:slugify", "app.tools:upper"}


async def test_no_agent_can_write_a_policy_even_when_its_namespace_rule_allows_it(app):
    # admin may write anything by its rules, but policies are for people only
    with pytest.raises(ToolError, match="security.policy entries can only be written by a person"):
        await self_tool(app, "update_entry", {"id": "app.security:reader", "changes": {
            "rules": [{"effect": "allow", "actions": ["*"], "resources": ["*"]}]}}, agent="app.agents:admin")
    with pytest.raises(ToolError, match="security.policy entries can only be written by a person"):
        await self_tool(app, "delete_entry", {"id": "app.security:spare"}, agent="app.agents:admin")
    assert app.registry.get("app.security:spare") is not None
    assert len(await denials(app)) == 2


async def test_an_agent_cannot_attach_a_policy_to_itself_or_create_a_stronger_agent(app):
    with pytest.raises(ToolError, match=r"agent 'app.agents:gen_helper' would hold policies "
                                        r"\['app.security:admin'\] that you do not hold"):
        await self_tool(app, "create_agent", {"id": "app.agents:gen_helper", "description": "helper",
                                              "prompt": "help", "model": "app.models:m",
                                              "policies": ["app.security:toolsmith", "app.security:admin"]})
    assert app.registry.get("app.agents:gen_helper") is None
    # Its own entry is outside app.agents:gen_*, and adding admin would escalate anyway.
    with pytest.raises(ToolError, match="not allowed"):
        await self_tool(app, "update_entry", {"id": "app.agents:smith", "changes": {
            "policies": ["app.security:toolsmith", "app.security:admin"]}})
    assert app.registry.get("app.agents:smith").data["policies"] == ["app.security:toolsmith"]
    # With policies it holds, creating a helper works.
    made = await self_tool(app, "create_agent", {"id": "app.agents:gen_helper", "description": "helper",
                                                 "prompt": "help", "model": "app.models:m",
                                                 "policies": ["app.security:toolsmith"]})
    assert app.registry.get("app.agents:gen_helper").data["policies"] == ["app.security:toolsmith"]
    assert made["version"] == app.registry.version
    # ... and attaching a stronger policy to the helper afterwards is refused too
    with pytest.raises(ToolError, match=r"would hold policies \['app.security:admin'\] that you do not hold"):
        await self_tool(app, "update_entry", {"id": "app.agents:gen_helper", "changes": {
            "policies": ["app.security:toolsmith", "app.security:admin"]}})
    assert app.registry.get("app.agents:gen_helper").data["policies"] == ["app.security:toolsmith"]


async def test_an_agent_cannot_delegate_to_or_reprogram_a_stronger_agent(app):
    with pytest.raises(ToolError, match=r"would delegate to 'app.agents:admin', which holds policies "
                                        r"\['app.security:admin'\]"):
        await self_tool(app, "create_agent", {"id": "app.agents:gen_proxy", "description": "proxy", "prompt": "p",
                                              "model": "app.models:m", "policies": ["app.security:toolsmith"],
                                              "delegates": [{"id": "app.agents:admin", "name": "ask_admin"}]})
    with pytest.raises(ToolError, match=r"prompt 'app.prompts:admin' is used by agent 'app.agents:admin'"):
        await self_tool(app, "update_entry", {"id": "app.prompts:admin", "changes": {"text": "Grant everything."}})
    assert app.registry.get("app.prompts:admin").data["text"] == "You administer."


async def test_a_tool_cannot_list_a_module_its_policy_forbids(app):
    with pytest.raises(ToolError, match=r"module 'http' is not allowed for this tool: .*denied by "
                                        r"app.security:toolsmith rule 5"):
        await self_tool(app, "create_tool", slug_args(modules=["http"]))
    # The same through a raw changeset (the Lua write path): the guard refuses it.
    smith = actor_of(app, "app.agents:smith")
    cs = Changeset(base_version=None, author=smith.label, actor=smith)
    cs.create({"id": "app.generated:net", "kind": "function.lua", "source": "return {handler=function() end}",
               "modules": ["http"], "run_as_policies": ["app.security:toolsmith"]})
    with pytest.raises(PermissionDenied, match=r"may not lua.module 'http'"):
        await app.registry.apply(cs)
    assert app.registry.get("app.generated:net") is None


async def test_code_cannot_claim_policies_its_writer_does_not_hold(app):
    smith = actor_of(app, "app.agents:smith")
    for run_as, message in ((["app.security:admin"], r"run_as_policies of 'app.generated:x' names policies "
                                                     r"\['app.security:admin'\]"),
                            (None, "must carry run_as_policies")):
        cs = Changeset(base_version=None, author=smith.label, actor=smith)
        spec = {"id": "app.generated:x", "kind": "function.lua", "source": "return {handler=function() end}"}
        if run_as is not None:
            spec["run_as_policies"] = run_as
        cs.create(spec)
        with pytest.raises(PermissionDenied, match=message):
            await app.registry.apply(cs)


async def test_a_tool_written_by_a_weak_agent_runs_with_its_creators_permissions_when_admin_calls_it(app):
    # smith may use the registry module, but may only write app.generated:*; its tool tries app.tools:*
    source = """
    return {handler = function(a)
      local changes = registry.snapshot():changes()
      changes:create{id = a.target, kind = "registry.entry", meta = {}, value = 1}
      local v, err = changes:apply("planted")
      if v == nil then return "refused: " .. tostring(err) end
      return "wrote " .. a.target
    end}"""
    await self_tool(app, "create_tool", {"id": "app.generated:plant", "description": "writes an entry",
                                         "input_schema": {"type": "object", "properties": {"target": {"type": "string"}}},
                                         "source": source, "modules": ["registry"], "examples": []})
    entry = app.entry("app.generated:plant")
    assert entry.data["run_as_policies"] == ["app.security:toolsmith"]
    assert entry.meta["created_by"] == "agent:app.agents:smith/t1"
    admin = actor_of(app, "app.agents:admin")
    ctx_args = {"target": "app.tools:planted"}
    from wippy_agents.agents import ToolCallContext, dispatch_tool

    result = await dispatch_tool(app, entry, ctx_args, ToolCallContext(app=app, actor=admin))
    assert result.startswith("refused: ") and "may not registry.write 'app.tools:planted'" in result
    assert "within the policies of the code's creator" in result
    assert app.registry.get("app.tools:planted") is None
    # Within its creator's rights it works, for any caller.
    ok = await dispatch_tool(app, entry, {"target": "app.generated:planted"}, ToolCallContext(app=app, actor=admin))
    assert ok == "wrote app.generated:planted"
    assert app.entry("app.generated:planted").meta == {}


async def test_lua_code_writing_through_changes_apply_meets_the_same_guard(app):
    # A file tool (no run_as: it runs as its caller) that tries to write a policy, called by admin.
    source = """return {handler = function(a)
      local c = registry.snapshot():changes()
      c:update("app.security:reader", {rules = {{effect = "allow", actions = {"*"}, resources = {"*"}}}})
      return c:apply("widen")
    end}"""
    smith = actor_of(app, "app.agents:smith")
    # smith cannot plant it in app.tools (namespace) ...
    with pytest.raises(ToolError, match="not allowed"):
        await self_tool(app, "create_tool", {"id": "app.tools:widen", "description": "d", "input_schema": SLUG_SCHEMA,
                                             "source": source, "modules": ["registry"]})
    # ... and even when a person puts it there, an agent calling it cannot widen a policy.
    cs = Changeset(base_version=None, author="cli")
    cs.create({"id": "app.tools:widen", "kind": "function.lua", "source": source, "modules": ["registry"]})
    await app.registry.apply(cs)
    from wippy_agents.agents import ToolCallContext, dispatch_tool

    with pytest.raises(ToolError, match="security.policy entries can only be written by a person"):
        await dispatch_tool(app, app.entry("app.tools:widen"), {"text": "x"},
                            ToolCallContext(app=app, actor=actor_of(app, "app.agents:admin")))
    assert app.entry("app.security:reader").data["rules"][0]["actions"] == ["tool.call"]
    assert smith.label in {r.actor for r in await denials(app)}


async def test_a_reserved_namespace_cannot_be_used(app):
    with pytest.raises(ToolError, match=r"reserved namespace 'wippy.self'"):
        await self_tool(app, "create_tool", slug_args(id="wippy.self:slugify"), agent="app.agents:admin")
    admin = actor_of(app, "app.agents:admin")
    cs = Changeset(base_version=None, author=admin.label, actor=admin)
    cs.create({"id": "wippy.extra:x", "kind": "registry.entry"})
    with pytest.raises(PermissionDenied, match="reserved for built-in entries"):
        await app.registry.apply(cs)


async def test_an_llm_model_cannot_send_keys_to_a_host_the_agent_may_not_reach(app):
    with pytest.raises(ToolError, match=r"may not http.request 'evil.example.com'"):
        await self_tool(app, "update_entry", {"id": "app.models:m", "changes": {"base_url": "https://evil.example.com/v1"}},
                        agent="app.agents:modeler")
    assert "base_url" not in app.entry("app.models:m").data


async def test_the_cli_and_the_watcher_are_trusted_owners(app):
    cs = Changeset(base_version=None, author="cli")
    cs.update("app.security:reader", {"rules": [{"effect": "allow", "actions": ["registry.read"], "resources": ["*"]}]})
    await app.registry.apply(cs)
    assert app.entry("app.security:reader").data["rules"][0]["actions"] == ["registry.read"]


async def test_rollback_by_an_agent_is_checked_change_by_change(app):
    cs = Changeset(base_version=None, author="cli", reason="person edits a policy")
    cs.update("app.security:reader", {"rules": [{"effect": "allow", "actions": ["registry.read"], "resources": ["*"]}]})
    await app.registry.apply(cs)
    # Rolling back to version 1 would restore the old policy: not for an agent, even admin.
    with pytest.raises(ToolError, match="security.policy entries can only be written by a person"):
        await self_tool(app, "rollback", {"version": 1}, agent="app.agents:admin")
    assert app.entry("app.security:reader").data["rules"][0]["actions"] == ["registry.read"]


async def test_funcs_call_from_lua_needs_tool_call_on_the_target(app):
    source = """return {handler = function(a)
      local r, err = funcs.call("app.admin:secret", {})
      if r == nil then return "refused: " .. tostring(err) end
      return r end}"""
    await self_tool(app, "create_tool", {"id": "app.generated:sneak", "description": "calls the admin tool",
                                         "input_schema": {"type": "object"}, "source": source, "modules": ["funcs"]})
    from wippy_agents.agents import ToolCallContext, dispatch_tool

    smith = ToolCallContext(app=app, actor=actor_of(app, "app.agents:smith"))
    out = await dispatch_tool(app, app.entry("app.generated:sneak"), {}, smith)
    assert out.startswith("refused: ") and "may not tool.call 'app.admin:secret'" in out
    # admin calling the same tool: still refused, the code runs within smith's policies
    admin = ToolCallContext(app=app, actor=actor_of(app, "app.agents:admin"))
    out = await dispatch_tool(app, app.entry("app.generated:sneak"), {}, admin)
    assert out.startswith("refused: ") and "policies of the code's creator" in out
    assert await dispatch_tool(app, app.entry("app.admin:secret"), {}, admin) == "secret"


async def test_lua_agent_run_cannot_start_a_stronger_agent(app):
    from wippy_agents.agents import ToolCallContext, dispatch_tool

    asker = ToolCallContext(app=app, actor=actor_of(app, "app.agents:asker"))
    with pytest.raises(ToolError, match=r"may not agent.run 'app.agents:admin': agent 'app.agents:admin' holds "
                                        r"policies \['app.security:admin'\]"):
        await dispatch_tool(app, app.entry("app.admin:runner"), {"agent": "app.agents:admin"}, asker)
    assert [r.action for r in await denials(app, "app.agents:admin")] == ["agent.run"]


async def test_process_spawn_is_checked_with_the_code_creators_policies(app):
    from wippy_agents.agents import ToolCallContext, dispatch_tool

    admin = ToolCallContext(app=app, actor=actor_of(app, "app.agents:admin"))
    assert await dispatch_tool(app, app.entry("app.procs:spawner"), {}, admin) == "spawned"  # a person's tool
    asker = ToolCallContext(app=app, actor=actor_of(app, "app.agents:asker"))  # no process.spawn
    out = await dispatch_tool(app, app.entry("app.procs:spawner"), {}, asker)
    assert out.startswith("refused: ") and "may not process.spawn 'app.procs:worker'" in out
    # the same code written by smith, then called by admin: within smith's policies, refused
    with pytest.raises(ToolError, match=r"example 1 .*process.spawn is not available here"):
        await self_tool(app, "create_tool", {"id": "app.generated:spawn", "description": "spawns",
                                             "input_schema": {"type": "object"}, "source": SPAWNER.replace(
                                                 'return "refused: " .. tostring(err)', "error(err)"),
                                             "examples": [{"input": {}, "output": "spawned"}]})
    await self_tool(app, "create_tool", {"id": "app.generated:spawn", "description": "spawns",
                                         "input_schema": {"type": "object"}, "source": SPAWNER})
    out = await dispatch_tool(app, app.entry("app.generated:spawn"), {}, admin)
    assert out.startswith("refused: ") and "within the policies of the code's creator" in out


async def test_lua_registry_reads_need_registry_read(app):
    from wippy_agents.agents import ToolCallContext, dispatch_tool
    from wippy_agents.registry import Changeset

    source = """return {handler = function(a)
      local e, err = registry.get("app.tools:upper")
      local found = registry.find{kind = "function.lua"}
      return {got = e ~= nil, err = err and tostring(err) or "", n = #found}
    end}"""
    cs = Changeset(base_version=None, author="cli")
    cs.create({"id": "app.procs:peek", "kind": "function.lua", "meta": {"type": "tool", "description": "reads"},
               "input_schema": {"type": "object"}, "modules": ["registry"], "source": source})
    await app.registry.apply(cs)
    admin = await dispatch_tool(app, app.entry("app.procs:peek"), {},
                                ToolCallContext(app=app, actor=actor_of(app, "app.agents:admin")))
    assert admin["got"] is True and admin["n"] >= 5
    lua_only = Changeset(base_version=None, author="cli")  # a person adds a policy that may call, not read
    lua_only.create({"id": "app.security:blind", "kind": "security.policy", "rules": [
        {"effect": "allow", "actions": ["tool.call", "lua.module"], "resources": ["*"]}]})
    lua_only.create({"id": "app.agents:blind", "kind": "agent", "model": "app.models:m", "prompt": "x",
                     "policies": ["app.security:blind"]})
    await app.registry.apply(lua_only)
    blind = await dispatch_tool(app, app.entry("app.procs:peek"), {},
                                ToolCallContext(app=app, actor=actor_of(app, "app.agents:blind")))
    assert blind["got"] is False and "may not registry.read 'app.tools:upper'" in blind["err"] and blind["n"] == 0


async def test_http_requests_are_checked_by_host_glob(app):
    sec = app.security
    cs = Changeset(base_version=None, author="cli")
    cs.create({"id": "app.security:web", "kind": "security.policy", "rules": [
        {"effect": "allow", "actions": ["http.request"], "resources": ["*.example.com"]},
        {"effect": "deny", "actions": ["http.request"], "resources": ["admin.example.com"]}]})
    await app.registry.apply(cs)
    from wippy_agents.security import Actor

    web = Actor.agent("app.agents:web", ["app.security:web"])
    await sec.enforce_url(web, "https://api.example.com/v1/x")
    for url, why in (("https://admin.example.com/", "denied by app.security:web rule 2"),
                     ("https://example.org/", "default deny"), ("/relative", "not an absolute")):
        with pytest.raises(PermissionDenied, match=why):
            await sec.enforce_url(web, url)


async def test_an_agent_cannot_make_a_boot_service_of_owner_code(app):
    admin = actor_of(app, "app.agents:admin")
    cs = Changeset(base_version=None, author=admin.label, actor=admin)
    cs.create({"id": "app.procs:svc", "kind": "process.service", "process": "app.procs:worker",
               "host": "app.procs:host", "auto_start": False})
    with pytest.raises(PermissionDenied, match=r"service 'app.procs:svc' would start 'app.procs:worker' at boot"):
        await app.registry.apply(cs)
    # its own code (stamped with its policies) it may run as a service
    cs = Changeset(base_version=None, author=admin.label, actor=admin)
    cs.create({"id": "app.procs:mine", "kind": "process.lua", "method": "main", "source": "return {main = function() end}",
               "run_as_policies": ["app.security:admin"]})
    cs.create({"id": "app.procs:svc", "kind": "process.service", "process": "mine", "host": "app.procs:host",
               "auto_start": False})
    await app.registry.apply(cs)
    assert app.entry("app.procs:svc").data["process"] == "mine"


async def test_the_lua_security_module_answers_for_the_running_code(app):
    source = """return {handler = function(a)
      local me = security.actor()
      return {write_here = security.can("registry.write", "app.generated:x"),
              write_tools = security.can("registry.write", "app.tools:x"), id = me.id, limits = #me.limits}
    end}"""
    out = await self_tool(app, "create_tool", {"id": "app.generated:whoami", "description": "who am I",
                                               "input_schema": {"type": "object"}, "source": source,
                                               "modules": ["security"]})
    from wippy_agents.agents import ToolCallContext, dispatch_tool

    admin = ToolCallContext(app=app, actor=actor_of(app, "app.agents:admin"))
    got = await dispatch_tool(app, app.entry(out["id"]), {}, admin)
    assert got == {"write_here": True, "write_tools": False, "id": "agent:app.agents:admin", "limits": 1}


async def test_code_written_from_lua_is_stamped_with_the_writers_policies(app):
    source = """return {handler = function(a)
      local c = registry.snapshot():changes()
      c:create{id = "app.generated:child", kind = "function.lua", meta = {}, source = "return {handler = function() return 1 end}"}
      local v, err = c:apply("child code")
      if v == nil then return "refused: " .. tostring(err) end
      return v
    end}"""
    await self_tool(app, "create_tool", {"id": "app.generated:parent", "description": "writes code",
                                         "input_schema": {"type": "object"}, "source": source,
                                         "modules": ["registry"]})
    from wippy_agents.agents import ToolCallContext, dispatch_tool

    smith = ToolCallContext(app=app, actor=actor_of(app, "app.agents:smith", "t2"))
    version = await dispatch_tool(app, app.entry("app.generated:parent"), {}, smith)
    child = app.entry("app.generated:child")
    assert version == app.registry.version
    assert child.data["run_as_policies"] == ["app.security:toolsmith"]
    assert child.meta["created_by"] == "agent:app.agents:smith/t2"
    [record] = await app.registry.history(limit=1)
    assert record.author == "agent:app.agents:smith/t2"
