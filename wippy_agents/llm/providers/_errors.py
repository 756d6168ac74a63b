"""Map the OpenAI and Anthropic SDK exceptions into our ``ProviderError`` tree.

Every mapped error says which model entry failed and what to do, and carries
``details``: ``status``, ``retryable`` and ``retry_after`` (seconds) that the
retry wrapper reads.
"""

from __future__ import annotations

import email.utils
import sys
import time
from typing import Any, Mapping

from wippy_agents.errors import MissingApiKey, ProviderError, ProviderTimeout, RateLimited
from wippy_agents.llm.config import ModelConfig

__all__ = ["map_sdk_error", "missing_key", "parse_retry_after", "cut_short"]

_RETRYABLE_STATUS = {408, 409, 425, 429}


def _sdk(name: str) -> tuple[type, ...]:
    """The SDK exception classes called ``name`` among the SDKs already imported (never imports one)."""
    return tuple(getattr(sys.modules[m], name) for m in ("openai", "anthropic") if m in sys.modules)


def _http(name: str) -> tuple[type, ...]:
    return tuple(getattr(sys.modules[m], name) for m in ("httpx2", "httpx") if m in sys.modules)


def _label(cfg: ModelConfig) -> str:
    return f"{cfg.provider} model {cfg.id or cfg.model!r} ({cfg.model})" if cfg.id else \
        f"{cfg.provider} model {cfg.model!r}"


def missing_key(cfg: ModelConfig) -> MissingApiKey:
    env = cfg.api_key_env
    return MissingApiKey(f"{_label(cfg)} needs an API key: set the environment variable {env} "
                         f"(export {env}=...)", env=env, entry=cfg.id)


def cut_short(cfg: ModelConfig, marker: str, *, had_output: bool) -> ProviderError:
    """The error for a reply whose stream ended without the provider's end marker (``marker``).

    Such a reply is a fragment, never an answer: the error is retryable under the same rule as a
    dropped connection (a whole ``request`` is tried again; a stream that reached its consumer is not).
    """
    what = "after part of the reply" if had_output else "before any reply"
    return ProviderError(f"{_label(cfg)}: the reply stream ended {what} without {marker} (the connection was "
                         "cut short)", retryable=True, truncated=True, entry=cfg.id, model=cfg.model,
                         provider=cfg.provider)


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date), else None."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):  # neither seconds nor a date: ignore it, use our backoff
        return None
    return max(0.0, parsed.timestamp() - (time.time() if now is None else now))


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _server_message(exc: Any) -> str:
    """What the server said, as text: the ``message`` of its JSON error body (OpenAI and Anthropic shapes),
    else its text body, else the SDK's message without its "Error code: N - " prefix; never a dict repr."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        message = inner.get("message") or inner.get("detail")
        if isinstance(message, str) and message.strip():
            return _one_line(message)
    if isinstance(body, str) and body.strip():
        return _one_line(body)
    response = getattr(exc, "response", None)
    try:
        text = response.text if response is not None else ""
    except Exception:  # noqa: BLE001 - a streamed body that was not read: no text to show
        text = ""
    if text.strip() and not text.lstrip().startswith(("{", "[")):
        return _one_line(text)
    message = str(getattr(exc, "message", None) or exc)
    if message.startswith("Error code:"):
        message = message.split(" - ", 1)[1] if " - " in message else ""
    return _one_line(message) if message and not message.lstrip().startswith("{") else "no details given"


def map_sdk_error(exc: BaseException, cfg: ModelConfig, *, mid_reply: bool = False) -> ProviderError:
    """Our error for an SDK (or httpx) exception; unknown exceptions become a plain ``ProviderError``.

    ``mid_reply``: the failure came while the reply's body was streaming (the wording differs).
    """
    base: dict[str, Any] = {"entry": cfg.id, "model": cfg.model, "provider": cfg.provider}
    label = _label(cfg)
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, _sdk("APITimeoutError")):
        return ProviderTimeout(f"{label} did not answer within {cfg.timeout:g}s; raise 'timeout' on the "
                               f"entry or try again later", retryable=True, **base)
    if mid_reply and isinstance(exc, _sdk("APIConnectionError") + _http("TransportError")):
        return ProviderError(f"{label}: the connection broke mid-reply: {_one_line(exc.__cause__ or exc)}",
                             retryable=True, **base)
    if isinstance(exc, _sdk("APIConnectionError")):
        where = cfg.base_url or "the provider's API"
        return ProviderError(f"{label}: cannot reach {where}: {_one_line(exc.__cause__ or exc)}",
                             retryable=True, **base)
    if isinstance(exc, _sdk("APIStatusError")):
        status = exc.status_code
        headers = getattr(exc.response, "headers", None)
        retry_after = parse_retry_after(headers)
        server = _server_message(exc)
        if status == 429:
            wait = f"; the server asks to retry after {retry_after:g}s" if retry_after is not None else ""
            return RateLimited(f"{label} is rate limited (HTTP 429){wait}: {server}", status=status,
                               retry_after=retry_after, retryable=True, **base)
        if status in (401, 403):
            env = cfg.api_key_env or "the API key"
            return ProviderError(f"{label} rejected the API key (HTTP {status}); check that {env} holds a "
                                 f"valid key: {server}", status=status, retryable=False, **base)
        if status >= 500 or status in _RETRYABLE_STATUS:
            return ProviderError(f"{label} failed with HTTP {status} (server side, retried): {server}",
                                 status=status, retry_after=retry_after, retryable=True, **base)
        return ProviderError(f"{label} refused the request with HTTP {status}: {server}",
                             status=status, retryable=False, **base)
    if isinstance(exc, _http("TimeoutException")):  # a read timeout while the body streams
        return ProviderTimeout(f"{label} stopped sending for {cfg.timeout:g}s mid-reply", retryable=True, **base)
    if isinstance(exc, _http("TransportError")):  # the connection broke while the body streamed
        return ProviderError(f"{label}: the connection broke mid-reply: {_one_line(exc)}", retryable=True, **base)
    return ProviderError(f"{label} failed: {type(exc).__name__}: {_one_line(exc)}", retryable=False, **base)
