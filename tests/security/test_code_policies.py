"""``policies:`` on code entries (SPEC §8): code acts with what both its caller and its own policies allow.

Each test is one rule, through a real app (``App.open``) and, where a person starts the code, through
``wippy call``. Explicit-only resources (loopback hosts for ``http.request``) are reached against a
real local HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from wippy_agents.agents import ToolCallContext, dispatch_tool
from wippy_agents.cli import main
from wippy_agents.errors import PermissionDenied, WippyError
from wippy_agents.registry import Changeset

from .apps import SPAWNER, actor_of, app_yaml, open_app

FETCH = """return {handler = function(a)
  local r, err = http.get(a.url)
  if r == nil then return "refused: " .. tostring(err) end
  return r.body
end}"""


def fn(name: str, source: str, **extra):
    return {"name": name, "kind": "function.lua", "meta": {"type": "tool", "description": name},
            "input_schema": {"type": "object"}, "source": source, **extra}


LIMITED = {"namespace": "app.limited", "entries": [
    {"name": "nospawn", "kind": "security.policy", "rules": [
        {"effect": "allow", "actions": ["tool.call", "registry.read", "lua.module", "process.send"],
         "resources": ["*"]}]},
    {"name": "spawner", "kind": "security.policy", "rules": [
        {"effect": "allow", "actions": ["process.spawn"], "resources": ["app.procs:*"]},
        {"effect": "allow", "actions": ["lua.module"], "resources": ["*"]}]},
    {"name": "local_net", "kind": "security.policy", "rules": [
        {"effect": "allow", "actions": ["http.request"], "resources": ["127.0.0.1"]},
        {"effect": "allow", "actions": ["lua.module"], "resources": ["http"]}]},
    {"name": "any_host", "kind": "security.policy", "rules": [
        {"effect": "allow", "actions": ["http.request"], "resources": ["*", "127.0.0.*"]},
        {"effect": "allow", "actions": ["lua.module"], "resources": ["http"]}]},
    {"name": "named_but_denied", "kind": "security.policy", "rules": [
        {"effect": "allow", "actions": ["http.request"], "resources": ["127.0.0.1"]},
        {"effect": "deny", "actions": ["http.request"], "resources": ["127.*"]},
        {"effect": "allow", "actions": ["lua.module"], "resources": ["http"]}]},
    # bare names: the entry's namespace
    fn("spawn_limited", SPAWNER, policies=["nospawn"]),
    fn("spawn_allowed", SPAWNER, policies=["spawner"]),
    fn("spawn_nothing", SPAWNER, policies=[]),
    {"name": "lib", "kind": "library.lua", "source": "return {}", "policies": ["nospawn"]},
    fn("via_lib", SPAWNER, imports={"l": "lib"}),
    fn("calls_spawner", 'return {handler = function() return funcs.call("app.procs:spawner", {}) end}',
       modules=["funcs"], policies=["nospawn"]),
    fn("fetch_plain", FETCH, modules=["http"]),
    fn("fetch_named", FETCH, modules=["http"], policies=["local_net"]),
    fn("fetch_glob", FETCH, modules=["http"], policies=["any_host"]),
    fn("fetch_denied", FETCH, modules=["http"], policies=["named_but_denied"]),
    {"name": "flow_named", "kind": "workflow.lua", "modules": ["http"], "policies": ["local_net"],
     "source": FETCH.replace("function(a)", "function(a) a = a or {}")},
    {"name": "flow_plain", "kind": "workflow.lua", "modules": ["http"],
     "source": FETCH.replace("function(a)", "function(a) a = a or {}")},
]}


class Hello(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
async def app(tmp_path):
    app = await open_app(tmp_path, app_yaml(extra_docs=[LIMITED]))
    yield app
    await app.close()


async def denials(app, resource=None):
    return [r for r in await app.store.audit_list(limit=200)
            if r.decision == "deny" and (resource is None or r.resource == resource)]


async def test_an_owner_calling_code_with_policies_is_narrowed_by_them(app):
    refused = await app.call("app.limited:spawn_limited", {})
    assert refused.startswith("refused: ") and "may not process.spawn 'app.procs:worker'" in refused
    assert "within the policies: of app.limited:spawn_limited ['app.limited:nospawn']" in refused
    assert await app.call("app.limited:spawn_allowed", {}) == "spawned"
    assert await app.call("app.procs:spawner", {}) == "spawned"  # no policies: the person's own rights
    assert (await app.call("app.limited:spawn_nothing", {})).startswith("refused: ")  # policies: [] allows nothing
    assert [r.resource for r in await denials(app)] == ["app.procs:worker"] * 2


async def test_an_agent_calling_code_with_policies_gets_only_what_both_allow(app):
    admin = ToolCallContext(app=app, actor=actor_of(app, "app.agents:admin"))
    refused = await dispatch_tool(app, app.entry("app.limited:spawn_limited"), {}, admin)
    assert refused.startswith("refused: ") and "app.limited:nospawn" in refused
    # the code's policies allow spawning, the reader's do not: the code gets no more than its caller
    reader = ToolCallContext(app=app, actor=actor_of(app, "app.agents:reader"))
    refused = await dispatch_tool(app, app.entry("app.limited:spawn_allowed"), {}, reader)
    assert refused.startswith("refused: ") and "app.security:reader" in refused
    assert await dispatch_tool(app, app.entry("app.limited:spawn_allowed"), {}, admin) == "spawned"


async def test_code_called_by_narrowed_code_stays_narrowed(app):
    refused = await app.call("app.limited:calls_spawner", {})  # the spawner itself has no policies
    assert refused.startswith("refused: ") and "within the policies: of app.limited:calls_spawner" in refused


async def test_an_imported_librarys_policies_narrow_the_code_that_imports_it(app):
    refused = await app.call("app.limited:via_lib", {})
    assert refused.startswith("refused: ") and "within the policies: of app.limited:lib" in refused


def test_policies_under_wippy_call_narrow_the_person(tmp_path, capsys, server):
    (tmp_path / "app.yaml").write_text(app_yaml(extra_docs=[LIMITED]), encoding="utf-8")
    args = ["--app", str(tmp_path / "app.yaml"), "--store", f"sqlite:///{tmp_path / 'state.db'}"]
    assert main(["call", "app.limited:spawn_limited", "{}", *args]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out.startswith("refused: ") and "app.limited:nospawn" in out
    assert main(["call", "app.limited:fetch_named", json.dumps({"url": server}), *args]) == 0
    assert json.loads(capsys.readouterr().out) == "hello"
    assert main(["call", "app.limited:fetch_plain", json.dumps({"url": server}), *args]) == 0
    assert "must be named by a policy rule" in json.loads(capsys.readouterr().out)
    assert main(["call", "app.limited:flow_named", json.dumps({"url": server}), *args]) == 0  # a workflow
    assert json.loads(capsys.readouterr().out) == "hello"


async def test_a_policy_reference_is_checked_like_other_references(tmp_path):
    broken = {"namespace": "app.broken", "entries": [fn("f", "return {handler = function() end}",
                                                       policies=["no_such_policy"])]}
    with pytest.raises(WippyError, match=r"app\.broken:no_such_policy"):
        await open_app(tmp_path, app_yaml(extra_docs=[broken]))


async def test_an_agent_cannot_give_code_policies_it_does_not_hold(app):
    smith = actor_of(app, "app.agents:smith")
    cs = Changeset(base_version=None, author=smith.label, actor=smith)
    cs.create({"id": "app.generated:x", "kind": "function.lua", "source": "return {handler=function() end}",
               "run_as_policies": ["app.security:toolsmith"], "policies": ["app.security:admin"]})
    with pytest.raises(PermissionDenied, match=r"policies of 'app.generated:x' names policies "
                                               r"\['app.security:admin'\] that you do not hold"):
        await app.registry.apply(cs)
    assert app.registry.get("app.generated:x") is None
    assert [r.details["reason"] for r in await denials(app, "app.generated:x")][0].startswith("policies of")
    # narrowing to a policy it holds is fine
    cs = Changeset(base_version=None, author=smith.label, actor=smith)
    cs.create({"id": "app.generated:x", "kind": "function.lua", "source": "return {handler=function() end}",
               "run_as_policies": ["app.security:toolsmith"], "policies": ["app.security:toolsmith"]})
    await app.registry.apply(cs)
    assert app.entry("app.generated:x").data["policies"] == ["app.security:toolsmith"]


async def test_a_loopback_host_is_not_reached_by_the_persons_default(app, server):
    refused = await app.call("app.limited:fetch_plain", {"url": server})
    assert "internal address (127.0.0.1)" in refused and "must be named by a policy rule" in refused
    assert [r.resource for r in await denials(app)] == ["127.0.0.1"]


async def test_a_loopback_host_is_not_reached_by_a_glob_rule(app, server):
    refused = await app.call("app.limited:fetch_glob", {"url": server})
    assert "internal address (127.0.0.1)" in refused and "only a glob allows it" in refused


async def test_a_loopback_host_is_reached_by_a_rule_that_names_it(app, server):
    assert await app.call("app.limited:fetch_named", {"url": server}) == "hello"
    # ... but not by a name that resolves there and is not named itself
    refused = await app.call("app.limited:fetch_named", {"url": server.replace("127.0.0.1", "localhost")})
    assert refused.startswith("refused: ") and "may not http.request 'localhost'" in refused


async def test_a_deny_glob_wins_over_a_rule_that_names_the_host(app, server):
    refused = await app.call("app.limited:fetch_denied", {"url": server})
    assert "denied by app.limited:named_but_denied rule 2" in refused


async def test_an_agent_needs_the_named_rule_in_its_own_policies_too(app, server):
    admin = ToolCallContext(app=app, actor=actor_of(app, "app.agents:admin"))  # admin: allow * on *
    refused = await dispatch_tool(app, app.entry("app.limited:fetch_named"), {"url": server}, admin)
    assert "internal address" in refused and "only a glob allows it" in refused


async def test_a_workflow_with_policies_is_narrowed_and_reaches_what_they_name(app, server):
    assert await app.workflows.run("app.limited:flow_named", {"url": server}, task_id="w1", timeout=10) == "hello"
    refused = await app.workflows.run("app.limited:flow_plain", {"url": server}, task_id="w2", timeout=10)
    assert "must be named by a policy rule" in refused


BOOTED = """return {main = function()
  local pid, err = process.spawn("app.procs:worker", "app.procs:host")
  process.send("collector", "result", pid and "spawned" or ("refused: " .. tostring(err)))
end}"""


async def test_a_service_started_at_boot_runs_as_the_person_narrowed_by_its_policies(tmp_path):
    boot = {"namespace": "app.boot", "entries": [
        {"name": "limited", "kind": "process.lua", "method": "main", "source": BOOTED,
         "policies": ["app.limited:nospawn"]},
        {"name": "plain", "kind": "process.lua", "method": "main", "source": BOOTED},
        {"name": "svc_limited", "kind": "process.service", "process": "limited", "host": "app.procs:host"},
        {"name": "svc_plain", "kind": "process.service", "process": "plain", "host": "app.procs:host",
         "depends_on": ["svc_limited"]},
    ]}
    app = await open_app(tmp_path, app_yaml(extra_docs=[LIMITED, boot]))
    try:
        got: asyncio.Queue = asyncio.Queue()

        async def collect(proc) -> None:
            while True:
                got.put_nowait((await proc.receive()).payload)

        app.node.spawn(collect, name="collector")
        assert await app.processes.start_services() == ["app.boot:svc_limited", "app.boot:svc_plain"]
        seen: set[str] = set()
        while len(seen) < 2:  # one answer from each (a service that returned is restarted, same answer)
            seen.add(await asyncio.wait_for(got.get(), 10))
        results = sorted(seen)
        assert results[1] == "spawned"  # plain: the person's own rights
        assert results[0].startswith("refused: ") and "within the policies: of app.boot:limited" in results[0]
    finally:
        await app.close()


async def test_update_entry_cannot_widen_code_with_policies_the_agent_does_not_hold(app):
    from wippy_agents.errors import ToolError

    from .apps import self_tool, slug_args

    await self_tool(app, "create_tool", slug_args())
    with pytest.raises(ToolError, match=r"policies of 'app.generated:slugify' names policies "
                                        r"\['app.security:admin'\] that you do not hold"):
        await self_tool(app, "update_entry", {"id": "app.generated:slugify",
                                              "changes": {"policies": ["app.security:admin"]}})
    assert "policies" not in app.entry("app.generated:slugify").data
    assert await denials(app, "app.generated:slugify")


async def test_an_llm_model_base_url_on_a_loopback_address_needs_a_rule_that_names_it(app):
    from wippy_agents.errors import ToolError

    from .apps import self_tool

    # admin may http.request any host by glob (allow * on *): not a loopback address
    with pytest.raises(ToolError, match=r"'127.0.0.1' is or resolves to an internal address .*only a glob"):
        await self_tool(app, "update_entry", {"id": "app.models:m", "changes": {"base_url": "http://127.0.0.1:9/v1"}},
                        agent="app.agents:admin")
    assert "base_url" not in app.entry("app.models:m").data
