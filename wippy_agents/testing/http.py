"""Mock model HTTP at the transport: route an ``httpx2`` client's requests through a respx router.

The official SDKs send through ``httpx2`` clients, which respx does not patch;
this transport converts each request to an ``httpx.Request``, lets the respx
router answer it (or raise, e.g. ``httpx.ReadTimeout``), and converts back.
Nothing is patched, and an unrouted request fails the test.

    >>> router = respx.MockRouter(assert_all_called=False)                        # doctest: +SKIP
    >>> router.post("https://api.openai.com/v1/chat/completions").respond(200, text=sse)  # doctest: +SKIP
    >>> http = mock_http_client(router)   # pass as make_provider(cfg, http_client=http)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import httpx2

__all__ = ["RespxTransport", "mock_http_client"]


class _BridgedStream(httpx2.AsyncByteStream):
    """Streams an ``httpx`` response body into ``httpx2``, so a body that fails half-way fails half-way."""

    def __init__(self, response: Any, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self):
        import httpx

        try:
            async for chunk in self._response.aiter_bytes():  # decoded; works on pre-read bodies too
                yield chunk
        except httpx.TimeoutException as exc:
            raise httpx2.ReadTimeout(str(exc) or "timed out", request=self._request) from exc
        except httpx.TransportError as exc:
            raise httpx2.ReadError(str(exc) or "connection lost", request=self._request) from exc

    async def aclose(self) -> None:
        await self._response.aclose()


class RespxTransport(httpx2.AsyncBaseTransport):
    """An ``httpx2`` transport answered by a respx router (``router.async_handler``)."""

    def __init__(self, router: Any) -> None:
        self.router = router
        self.requests: list[Any] = []  # the httpx.Request objects seen, in order

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        import httpx  # respx's own dependency; imported here so the package needs it only in tests

        body = await request.aread()
        mirrored = httpx.Request(request.method, str(request.url), headers=list(request.headers.multi_items()),
                                 content=body)
        self.requests.append(mirrored)
        try:
            response = await self.router.async_handler(mirrored)
        except httpx.TimeoutException as exc:
            raise httpx2.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except httpx.TransportError as exc:
            raise httpx2.ConnectError(str(exc) or "connection failed", request=request) from exc
        # The body is passed on decoded; drop the headers that describe its wire form.
        headers = [(k, v) for k, v in response.headers.multi_items()
                   if k.lower() not in ("content-encoding", "transfer-encoding", "content-length")]
        return httpx2.Response(response.status_code, headers=headers, stream=_BridgedStream(response, request),
                               request=request)


def mock_http_client(router: Any) -> httpx2.AsyncClient:
    """An ``httpx2.AsyncClient`` whose every request goes to ``router``; close it with ``aclose``."""
    return httpx2.AsyncClient(transport=RespxTransport(router))
