"""``http``: outbound HTTP(S) for Lua code, scoped by policy (SPEC §5, §8).

::

    local resp, err = http.get("https://api.example.com/v1/x", {headers = {Accept = "application/json"}})
    local resp, err = http.post(url, body, {headers = {...}, timeout = "10s"})
    local resp, err = http.request{method = "PUT", url = url, headers = {...}, body = "...", timeout = "5s"}
    -- resp = {status = 200, headers = {["content-type"] = "..."}, body = "...", url = final_url}

What a request must pass, on the first hop and on every redirect (at most
``MAX_REDIRECTS``, followed here, never by the client):

* the URL is absolute ``http``/``https`` with a host (``file://``, ``gopher://``,
  ``data:`` ... are refused); header names are tokens and no header value
  holds CR, LF or NUL (no header injection);
* ``http.request`` on the URL's host is allowed for the caller (the op's
  declared guard: its policies, narrowed by the entry's ``policies:``; asked
  by the host for the first hop and by this module for every redirect);
* the host is resolved (``resolver``, a seam), and the addresses go to the
  guard with the URL: if any is loopback, private, link-local, unspecified,
  multicast or reserved, only a policy rule that names the host allows it —
  a glob (``*``, ``*.example.com``) or an owner's default does not (the rule
  lives in security: ``Security.enforce_url``).  On a host without security
  (``UNGUARDED``) such hosts are always refused;
* the connection goes to the checked address, never to a second lookup of
  the name (no DNS rebinding): the URL is rewritten to the address, with the
  ``Host`` header and, for https, the TLS server name (SNI, and the name the
  certificate is verified against) set to the host (a ``Host`` header from
  Lua is replaced: the server sees the name the policy judged);
* the response body is read up to ``max_bytes`` (default 10 MiB) and the whole
  request is bounded by its ``timeout`` (default and maximum 30 s).

Secrets: a header value written exactly ``${secret:NAME}`` is filled in by the
runtime from the secret store (``secrets``, by default the environment) when
the request is sent; Lua never sees the value, and it is dropped when a
redirect leaves the origin.  ``${secret:...}`` anywhere else (URL, body, inside
a longer header value) is refused.

Inside a workflow the request is a journaled step (``tasks/workflow_ops.py``
journals every op that is not pure); a replay answers from the journal.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import urljoin, urlsplit

import httpx

from wippy_agents.errors import PermissionDenied, UsageError
from wippy_agents.lua.limits import parse_duration
from wippy_agents.lua.modules.base import LuaModule, LuaOp
from wippy_agents.lua.seams import UNGUARDED
from wippy_agents.security.network import is_internal

__all__ = ["http_module", "MODULE", "MAX_BYTES", "MAX_TIMEOUT", "MAX_REDIRECTS"]

MAX_BYTES = 10 << 20
MAX_TIMEOUT = 30.0
MAX_REDIRECTS = 5
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_SECRET = re.compile(r"^\$\{secret:([A-Za-z_][A-Za-z0-9_.\-]*)\}$")

LUA = r"""
local M = {}
function M.request(req)
  if type(req) ~= "table" then return nil, "http.request: expected a table {method =, url =, ...}" end
  return host("http.request", req)
end
function M.get(url, opts)
  local r = {method = "GET", url = url}
  for k, v in pairs(opts or {}) do r[k] = v end
  return host("http.request", r)
end
function M.post(url, body, opts)
  local r = {method = "POST", url = url, body = body}
  for k, v in pairs(opts or {}) do r[k] = v end
  return host("http.request", r)
end
return M
"""

Resolver = Callable[[str, int], Awaitable[list[str]]]


async def _resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({info[4][0] for info in infos})


def _text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise UsageError(f"http.request: {where} must be a string, got {type(value).__name__}")


class _Request:
    __slots__ = ("method", "url", "headers", "secret_headers", "body", "timeout")

    def __init__(self, req: Any, secrets: Callable[[str], str | None]) -> None:
        if not isinstance(req, Mapping):
            raise UsageError("http.request: expected a table {method =, url =, headers =, body =, timeout =}")
        unknown = set(req) - {"method", "url", "headers", "body", "timeout"}
        if unknown:
            raise UsageError(f"http.request: unknown field(s) {sorted(unknown)!r}; use method, url, headers, "
                             "body, timeout")
        method = _text(req.get("method", "GET"), "method").upper()
        if method not in METHODS:
            raise UsageError(f"http.request: method {method!r} is not one of {', '.join(sorted(METHODS))}")
        self.method = method
        self.url = _text(req.get("url"), "url") if req.get("url") is not None else ""
        if "${secret:" in self.url:
            raise UsageError("http.request: ${secret:...} is only allowed as a whole header value")
        body = req.get("body")
        self.body = None if body is None else _text(body, "body")
        if self.body is not None and "${secret:" in self.body:
            raise UsageError("http.request: ${secret:...} is only allowed as a whole header value")
        timeout = req.get("timeout")
        seconds = MAX_TIMEOUT if timeout is None else parse_duration(timeout, where="http.request timeout")
        self.timeout = min(max(seconds, 0.001), MAX_TIMEOUT)
        headers = req.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise UsageError("http.request: headers must be a table of name = value strings")
        self.headers: dict[str, str] = {}
        self.secret_headers: dict[str, str] = {}
        for name, value in headers.items():
            name = _text(name, "a header name")
            if not _TOKEN.match(name):
                raise UsageError(f"http.request: header name {name[:40]!r} is not a valid HTTP token")
            value = _text(value, f"header {name}")
            if any(c in value for c in "\r\n\0"):
                raise UsageError(f"http.request: header {name} holds a line break or NUL (header injection)")
            secret = _SECRET.match(value)
            if secret:
                resolved = secrets(secret.group(1))
                if resolved is None:
                    raise UsageError(f"http.request: header {name}: secret {secret.group(1)!r} is not set")
                self.secret_headers[name] = resolved
            elif "${secret:" in value:
                raise UsageError("http.request: ${secret:...} is only allowed as a whole header value")
            else:
                self.headers[name] = value


def _target(url: str) -> tuple[str, str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"http.request: {url[:80]!r} is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UsageError(f"http.request: only http and https URLs are allowed, not {scheme or 'a relative'!r} "
                         f"({url[:80]!r})")
    if not parts.hostname:
        raise UsageError(f"http.request: {url[:80]!r} has no host")
    if parts.username or parts.password:
        raise UsageError("http.request: credentials in the URL are not allowed; use a header")
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


def _pinned(url: str, address: str, headers: dict[str, str]) -> tuple[httpx.URL, dict[str, Any]]:
    """``url`` with its host replaced by the checked ``address``; the name goes in ``Host`` (set in
    ``headers``) and, for https, in the TLS server name the certificate is checked against."""
    target = httpx.URL(url)
    name = target.raw_host.decode("ascii")
    for key in [k for k in headers if k.lower() == "host"]:
        del headers[key]  # the runtime sets Host: the name the policy judged
    headers["Host"] = target.netloc.decode("ascii")
    extensions: dict[str, Any] = {"sni_hostname": name} if target.scheme == "https" else {}
    return target.copy_with(host=address.split("%", 1)[0]), extensions


def http_module(*, secrets: Callable[[str], str | None] | None = None, resolver: Resolver | None = None,
                transport: httpx.AsyncBaseTransport | None = None, max_bytes: int = MAX_BYTES) -> LuaModule:
    """The ``http`` module; ``secrets`` resolves ``${secret:NAME}`` (default: the environment),
    ``resolver`` and ``transport`` are seams for tests."""
    lookup = secrets or os.environ.get
    resolve = resolver or _resolve

    async def checked(ctx: Any, url: str, host: str, port: int, first: bool) -> str:
        """Resolve ``host``, have the guard judge the URL with its addresses; the address to connect to."""
        guard = ctx.services.guard
        if guard is None:
            raise PermissionDenied("http.request needs a security guard on this Lua host")
        try:
            addresses = [str(a) for a in await resolve(host, port)]
        except (OSError, UnicodeError) as exc:
            raise UsageError(f"http.request: cannot resolve {host!r} ({exc})") from None
        if not addresses:
            raise UsageError(f"http.request: cannot resolve {host!r} (no address)")
        internal = [a for a in addresses if is_internal(a)]
        if internal and guard is UNGUARDED:
            raise PermissionDenied(f"http.request: {host!r} resolves to an internal address ({internal[0]}); "
                                   "a host without security never reaches loopback, private or link-local hosts")
        if internal or not first:  # the first hop's host was checked by the host before the op ran
            await guard.check(ctx, "http.request", declared, [{"url": url, "addresses": addresses}])
        return addresses[0]

    async def request(ctx: Any, req: Any = None) -> dict[str, Any]:
        r = _Request(req, lookup)
        url = r.url
        scheme, host, port = _target(url)
        origin = (scheme, host, port)
        method, body = r.method, r.body
        async with httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False,
                                     timeout=r.timeout) as client:
            try:
                async with asyncio.timeout(r.timeout):
                    for hop in range(MAX_REDIRECTS + 1):
                        scheme, host, port = _target(url)
                        address = await checked(ctx, url, host, port, hop == 0)
                        headers = dict(r.headers)
                        if (scheme, host, port) == origin:
                            headers.update(r.secret_headers)
                        pinned, extensions = _pinned(url, address, headers)
                        async with client.stream(method, pinned, headers=headers, extensions=extensions,
                                                 content=body.encode() if body is not None else None) as resp:
                            if resp.is_redirect and "location" in resp.headers:
                                url = urljoin(url, resp.headers["location"])
                                if resp.status_code in (301, 302, 303) and method != "HEAD":
                                    method, body = "GET", None
                                continue
                            data = bytearray()
                            async for chunk in resp.aiter_bytes():
                                data += chunk
                                if len(data) > max_bytes:
                                    raise UsageError(f"http.request: the response from {host!r} is larger than "
                                                     f"{max_bytes} bytes")
                            return {"status": resp.status_code, "url": url,
                                    "headers": {k.lower(): v for k, v in resp.headers.items()},
                                    "body": data.decode("utf-8", "surrogateescape")}
                    raise UsageError(f"http.request: more than {MAX_REDIRECTS} redirects from {r.url[:80]!r}")
            except TimeoutError:
                raise UsageError(f"http.request: {host!r} did not answer within {r.timeout:g} s") from None
            except httpx.HTTPError as exc:
                raise UsageError(f"http.request: {method} {host!r} failed: {type(exc).__name__}") from None

    declared = LuaOp(fn=request, effect="write", guard="http.request")  # also asked about each redirect hop
    return LuaModule(name="http", lua=LUA, ops={"http.request": declared})


MODULE = http_module()
