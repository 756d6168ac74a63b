"""The ``http`` module (SPEC §5, §8) against a real local server on 127.0.0.1.

A "public" name is made with the resolver seam (it resolves to a public
address) plus a transport that delivers its connections to the local server,
so the policy sees a public host while the bytes still go to 127.0.0.1.
"""

from __future__ import annotations

import fnmatch
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.lua.conftest import MemoryRegistry, fn_entry
from wippy_agents.errors import LuaError, PermissionDenied
from wippy_agents.lua import LuaHost
from wippy_agents.lua.modules import builtin_modules
from wippy_agents.lua.modules.http import http_module
from wippy_agents.security import is_internal

PUBLIC = {"api.example.test": ["93.184.216.34"], "other.example.test": ["93.184.216.35"],
          "sneaky.example.test": ["127.0.0.1"], "localhost": ["127.0.0.1"], "127.0.0.1": ["127.0.0.1"]}


class Handler(BaseHTTPRequestHandler):
    hits: list[str] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        Handler.hits.append(f"{self.headers.get('Host')}{parts.path}")
        if parts.path == "/ok":
            self._send(200, b"hello", {"X-Test": "1"})
        elif parts.path == "/headers":
            self._send(200, json.dumps(dict(self.headers)).encode())
        elif parts.path == "/big":
            self._send(200, b"x" * ((10 << 20) + 10))
        elif parts.path == "/slow":
            time.sleep(1.5)
            self._send(200, b"late")
        elif parts.path == "/redirect":
            self._send(302, b"", {"Location": parse_qs(parts.query)["to"][0]})
        else:
            self._send(404, b"nope")

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        self._send(201, b"got " + self.rfile.read(n))


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # a client that hung up (size cap, timeout)
        pass


@pytest.fixture(scope="module")
def server():
    srv = QuietServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


class ToLocal(httpx.AsyncBaseTransport):
    """Delivers every connection to the local server (the Host header keeps the name)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Guard:
    """The security seam (``OpGuard``) with http.request rules as host globs; everything else allowed.

    Like ``Security.enforce_url``: a host resolving to an internal address needs a rule naming it.
    """

    def __init__(self, allow: list[str]) -> None:
        self.allow = allow
        self.denied: list[str] = []
        self.checked: list[tuple[str, list[str]]] = []

    def can(self, actor, action, resource) -> bool:
        return action != "http.request" or any(fnmatch.fnmatchcase(resource, g) for g in self.allow)

    async def check(self, ctx, name, op, args):
        if op.guard == "http.request":
            url = args[0].get("url") if args and isinstance(args[0], dict) else None
            host = urlsplit(str(url or "")).hostname or ""
            if not self.can(ctx.actor, "http.request", host):
                self.denied.append(host)
                raise PermissionDenied(f"http.request {host!r} denied")
            internal = [a for a in args[0].get("addresses") or () if is_internal(a)]
            self.checked.append((host, list(args[0].get("addresses") or ())))
            if internal and host not in self.allow:
                self.denied.append(host)
                raise PermissionDenied(f"http.request {host!r} resolves to an internal address ({internal[0]})")
        return None

    def describe(self, actor):
        return {"id": str(actor)}


def make_host(port: int, allow: list[str], secrets: dict | None = None) -> LuaHost:
    async def resolver(host, port_):
        if host not in PUBLIC:
            raise OSError("no such host")
        return PUBLIC[host]

    modules = builtin_modules()
    modules["http"] = http_module(secrets=(secrets or {}).get, resolver=resolver, transport=ToLocal(port))
    return LuaHost(services=MemoryRegistry().services(guard=Guard(allow)), modules=modules)


async def call(host: LuaHost, code: str):
    return await host.call_function(fn_entry(code, modules=["http"]), {})


async def test_an_allowed_host_answers_status_headers_and_body(server):
    host = make_host(server, ["api.example.test"])
    r = await call(host, 'return http.get("http://api.example.test/ok")')
    assert r["status"] == 200 and r["body"] == "hello" and r["headers"]["x-test"] == "1"
    r = await call(host, 'return http.post("https://api.example.test/post", "ping")')
    assert r["status"] == 201 and r["body"] == "got ping"


async def test_a_host_no_rule_allows_is_nil_err(server):
    host = make_host(server, ["api.example.test"])
    r = await call(host, 'local r, err = http.get("http://other.example.test/ok"); return {r = r == nil, err = err}')
    assert r["r"] is True and "denied" in r["err"]


async def test_loopback_needs_a_rule_that_names_it(server):
    wildcard = make_host(server, ["*"])
    r = await call(wildcard, f'local r, err = http.get("http://127.0.0.1:{server}/ok"); return err')
    assert "internal address" in r
    named = make_host(server, ["127.0.0.1"])
    r = await call(named, f'return http.get("http://127.0.0.1:{server}/ok").body')
    assert r == "hello"


async def test_a_dns_name_resolving_to_loopback_is_refused(server):
    host = make_host(server, ["*.example.test"])
    r = await call(host, 'local r, err = http.get("http://sneaky.example.test/ok"); return err')
    assert "internal address (127.0.0.1)" in r


async def test_ssrf_through_a_redirect_to_loopback_is_refused_and_never_fetched(server):
    host = make_host(server, ["*"])
    before = list(Handler.hits)
    r = await call(host, f'local r, err = http.get("http://api.example.test/redirect?to=http://127.0.0.1:{server}/ok"); '
                         'return err')
    assert "internal address" in r
    assert [h for h in Handler.hits[len(before):] if h.endswith("/ok")] == []


async def test_a_redirect_to_an_allowed_host_is_followed(server):
    host = make_host(server, ["*.example.test"])
    r = await call(host, 'return http.get("http://api.example.test/redirect?to=http://other.example.test/ok")')
    assert r["status"] == 200 and r["url"] == "http://other.example.test/ok"


async def test_the_response_size_is_capped(server):
    host = make_host(server, ["api.example.test"])
    r = await call(host, 'local r, err = http.get("http://api.example.test/big"); return err')
    assert "larger than 10485760 bytes" in r


async def test_a_slow_answer_times_out(server):
    host = make_host(server, ["api.example.test"])
    r = await call(host, 'local r, err = http.get("http://api.example.test/slow", {timeout = "200ms"}); return err')
    assert "did not answer within 0.2 s" in r


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://api.example.test/", "ftp://api.example.test/x",
                                 "data:text/plain,hi", "/relative", "http://user:pw@api.example.test/ok"])
async def test_other_schemes_and_urls_are_refused(server, url):
    host = make_host(server, ["*"])
    r = await call(host, f'local r, err = http.get("{url}"); return err')
    assert r.startswith("http.request:")


@pytest.mark.parametrize("headers", ['{["X-A"] = "v\\r\\nX-Injected: 1"}', '{["X-A\\r\\nB"] = "v"}',
                                     '{["X-A"] = "v\\0"}'])
async def test_header_injection_is_refused(server, headers):
    host = make_host(server, ["*.example.test"])
    r = await call(host, f'local r, err = http.get("http://api.example.test/headers", {{headers = {headers}}}); '
                         'return err')
    assert "http.request:" in r


async def test_secrets_fill_whole_header_values_only_and_never_follow_a_cross_host_redirect(server):
    host = make_host(server, ["*.example.test"], secrets={"API_KEY": "s3cr3t"})
    r = await call(host, 'return http.get("http://api.example.test/headers", '
                         '{headers = {Authorization = "${secret:API_KEY}"}}).body')
    assert json.loads(r)["Authorization"] == "s3cr3t"
    r = await call(host, 'return http.get("http://api.example.test/redirect?to=http://other.example.test/headers", '
                         '{headers = {Authorization = "${secret:API_KEY}"}}).body')
    assert "Authorization" not in json.loads(r)
    for bad in ('http.get("http://api.example.test/${secret:API_KEY}")',
                'http.get("http://api.example.test/ok", {headers = {A = "Bearer ${secret:API_KEY}"}})',
                'http.post("http://api.example.test/ok", "${secret:API_KEY}")'):
        err = await call(host, f"local r, err = {bad}; return err")
        assert "only allowed as a whole header value" in err


async def test_http_is_not_enabled_unless_listed(server):
    host = make_host(server, ["*"])
    with pytest.raises(LuaError, match='module "http" is not enabled for app.test:fn: list it under modules:'):
        await host.call_function(fn_entry('return http.get("http://api.example.test/ok")'), {})


async def test_a_listed_module_this_node_does_not_provide_says_so(server):
    host = LuaHost(services=MemoryRegistry().services(guard=Guard(["*"])))
    del host.modules["http"]
    with pytest.raises(LuaError, match='module "http" is listed .* but this node does not provide it'):
        await host.call_function(fn_entry('return http.get("http://x.test/")', modules=["http"]), {})


async def test_inside_a_workflow_a_request_is_one_journaled_step_and_a_replay_does_not_send_it_again(tmp_path, server):
    import yaml

    from wippy_agents.app import App

    app_dir = tmp_path / "app"
    (app_dir / "src").mkdir(parents=True)
    (app_dir / "wippy.yaml").write_text(yaml.safe_dump({
        "sources": ["src"], "store": f"sqlite:///{tmp_path}/state.db",
        "tasks": {"lease_seconds": 0.6, "heartbeat_seconds": 0.1, "claim_interval": 0}}))
    flow = ('return {handler = function() local r, err = http.get("http://127.0.0.1:%d/ok") '
            'if not r then return nil, err end return {status = r.status, body = r.body} end}' % server)
    (app_dir / "src" / "app.yaml").write_text(yaml.safe_dump({"namespace": "app", "entries": [
        # the flow's code may reach exactly this loopback host: a rule that names it
        {"name": "local_net", "kind": "security.policy", "rules": [
            {"effect": "allow", "actions": ["http.request"], "resources": ["127.0.0.1"]},
            {"effect": "allow", "actions": ["lua.module"], "resources": ["*"]}]},
        {"name": "fetch", "kind": "workflow.lua", "source": flow, "modules": ["http"],
         "run_as_policies": ["app:local_net"]},
    ]}))
    async with await App.open(str(app_dir)) as app:
        before = len([h for h in Handler.hits if h.endswith("/ok")])
        result = await app.workflows.run("app:fetch", None, task_id="h1", timeout=10)
        assert result == {"status": 200, "body": "hello"}
        steps = await app.store.journal_load("h1")
        assert [s.name for s in steps] == ["http.request"] and steps[0].result["body"] == "hello"
        await app.store.task_update("h1", status="stranded", owner=None, lease_expires_at=None, result=None)
        await app.tasks.resume("h1")
        assert await app.tasks.wait("h1", timeout=10) == result  # answered from the journal
        assert len([h for h in Handler.hits if h.endswith("/ok")]) == before + 1


class Recording(ToLocal):
    """``ToLocal`` that records what the module asked to connect to, before delivering it locally."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.seen: list[tuple[str, str, str | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.url.host, request.headers["host"], request.extensions.get("sni_hostname")))
        return await super().handle_async_request(request)


def rebinding_resolver(first: list[str], then: list[str], calls: list[str]):
    """Answers ``first`` for the first lookup of a name and ``then`` for every later one (DNS rebinding)."""

    async def resolver(host, port_):
        calls.append(host)
        return first if calls.count(host) == 1 else then

    return resolver


async def test_the_connection_goes_to_the_checked_address_not_to_a_second_lookup(server):
    calls: list[str] = []
    transport = Recording(server)
    modules = builtin_modules()
    modules["http"] = http_module(resolver=rebinding_resolver(["93.184.216.34"], ["127.0.0.1"], calls),
                                  transport=transport)
    host = LuaHost(services=MemoryRegistry().services(guard=Guard(["*.example.test"])), modules=modules)
    r = await call(host, 'return http.get("https://rebind.example.test/headers")')
    assert r["status"] == 200 and r["url"] == "https://rebind.example.test/headers"
    assert calls == ["rebind.example.test"]  # one lookup per hop: the one that was checked
    assert transport.seen == [("93.184.216.34", "rebind.example.test", "rebind.example.test")]
    assert json.loads(r["body"])["Host"] == "rebind.example.test"


async def test_a_rebinding_name_is_connected_by_its_checked_address_with_the_real_transport(server):
    # "rebind.invalid" resolves nowhere but through the seam: if httpx looked the name up again
    # (instead of connecting to the checked 127.0.0.1) the request would fail.
    calls: list[str] = []
    modules = builtin_modules()
    modules["http"] = http_module(resolver=rebinding_resolver(["127.0.0.1"], ["10.255.255.1"], calls))
    guard = Guard(["rebind.invalid"])  # a rule that names it: its internal address is allowed
    host = LuaHost(services=MemoryRegistry().services(guard=guard), modules=modules)
    r = await call(host, f'return http.get("http://rebind.invalid:{server}/headers")')
    assert r["status"] == 200 and json.loads(r["body"])["Host"] == f"rebind.invalid:{server}"
    assert calls == ["rebind.invalid"] and guard.checked[-1] == ("rebind.invalid", ["127.0.0.1"])


async def test_a_rebinding_redirect_is_judged_and_pinned_per_hop(server):
    # hop 1 checks public, hop 2 (a redirect to the same name) looks it up again and gets loopback: refused
    calls: list[str] = []
    transport = Recording(server)
    modules = builtin_modules()
    modules["http"] = http_module(resolver=rebinding_resolver(["93.184.216.34"], ["127.0.0.1"], calls),
                                  transport=transport)
    host = LuaHost(services=MemoryRegistry().services(guard=Guard(["*.example.test"])), modules=modules)
    err = await call(host, 'local r, err = http.get("http://rebind.example.test/redirect?to=/ok"); return err')
    assert "internal address (127.0.0.1)" in err
    assert [seen[0] for seen in transport.seen] == ["93.184.216.34"]  # the loopback hop was never sent


async def test_lua_cannot_set_the_host_header_to_another_name(server):
    host = make_host(server, ["api.example.test"])
    r = await call(host, 'return http.get("http://api.example.test/headers", {headers = {Host = "admin.internal"}})')
    assert json.loads(r["body"])["Host"] == "api.example.test"


async def test_an_unguarded_host_never_reaches_internal_addresses(server):
    from wippy_agents.lua import UNGUARDED

    modules = builtin_modules()
    modules["http"] = http_module()
    host = LuaHost(services=MemoryRegistry().services(guard=UNGUARDED), modules=modules)
    err = await call(host, f'local r, err = http.get("http://127.0.0.1:{server}/ok"); return err')
    assert "internal address (127.0.0.1)" in err and "without security" in err


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """An https server on 127.0.0.1 whose certificate names only ``secure.invalid`` (made with openssl)."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(d / "k.pem"), "-out", str(d / "c.pem"), "-days", "1",
                    "-subj", "/CN=secure.invalid", "-addext", "subjectAltName=DNS:secure.invalid"],
                   check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(d / "c.pem"), str(d / "k.pem"))
    srv = QuietServer(("127.0.0.1", 0), Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1], str(d / "c.pem")
    srv.shutdown()
    srv.server_close()


async def test_https_to_a_pinned_address_verifies_the_certificate_against_the_host_name(tls_server):
    import ssl

    port, cert = tls_server

    async def resolver(host, port_):
        return ["127.0.0.1"]

    trusting = httpx.AsyncHTTPTransport(verify=ssl.create_default_context(cafile=cert))
    modules = builtin_modules()
    modules["http"] = http_module(resolver=resolver, transport=trusting)
    host = LuaHost(services=MemoryRegistry().services(guard=Guard(["secure.invalid", "other.invalid"])),
                   modules=modules)
    r = await call(host, f'return http.get("https://secure.invalid:{port}/ok")')
    assert r["status"] == 200 and r["body"] == "hello"  # TLS checked secure.invalid, though we dialled 127.0.0.1
    err = await call(host, f'local r, err = http.get("https://other.invalid:{port}/ok"); return err')
    assert "failed: ConnectError" in err  # the certificate does not name other.invalid
