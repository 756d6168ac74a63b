"""Model providers and ``make_provider``, the one place that maps a provider name to a class."""

from __future__ import annotations

import importlib
from typing import Any, Awaitable, Callable

from wippy_agents.llm.base import Provider
from wippy_agents.llm.config import ModelConfig
from wippy_agents.llm.providers.scripted import ScriptedCall, ScriptedProvider, ScriptExhausted
from wippy_agents.llm.retry import RetryingProvider

__all__ = [
    "make_provider",
    "OpenAIProvider",
    "OpenAICompatibleProvider",
    "AnthropicProvider",
    "ScriptedProvider",
    "ScriptedCall",
    "ScriptExhausted",
]

# The SDKs take seconds to import; load one only when a model of its kind is made.
_LAZY = {
    "OpenAIProvider": ("wippy_agents.llm.providers.openai", "OpenAIProvider"),
    "OpenAICompatibleProvider": ("wippy_agents.llm.providers.openai_compatible", "OpenAICompatibleProvider"),
    "AnthropicProvider": ("wippy_agents.llm.providers.anthropic", "AnthropicProvider"),
}
_BY_PROVIDER = {"openai": "OpenAIProvider", "anthropic": "AnthropicProvider",
                "openai_compatible": "OpenAICompatibleProvider"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_provider(cfg: ModelConfig, *, http_client: Any = None,
                  sleep: Callable[[float], Awaitable[Any]] | None = None) -> Provider:
    """The provider for ``cfg``, wrapped in ``RetryingProvider`` (``cfg.max_retries``).

    The scripted provider is returned bare: its replies are fixed, and a
    scripted ``error`` must reach the caller as written.
    Raises ``MissingApiKey`` (one line naming the env var) when the key is not set.
    """
    if cfg.provider == "scripted":
        return ScriptedProvider(config=cfg)
    inner = __getattr__(_BY_PROVIDER[cfg.provider])(cfg, http_client=http_client, sleep=sleep)
    return RetryingProvider(inner) if sleep is None else RetryingProvider(inner, sleep=sleep)
