"""Model providers and ``make_provider``, the one place that maps a provider name to a class."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from wippy_agents.llm.base import Provider
from wippy_agents.llm.config import ModelConfig
from wippy_agents.llm.providers.anthropic import AnthropicProvider
from wippy_agents.llm.providers.openai import OpenAIProvider
from wippy_agents.llm.providers.openai_compatible import OpenAICompatibleProvider
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

_CLASSES = {"openai": OpenAIProvider, "anthropic": AnthropicProvider, "openai_compatible": OpenAICompatibleProvider}


def make_provider(cfg: ModelConfig, *, http_client: Any = None,
                  sleep: Callable[[float], Awaitable[Any]] | None = None) -> Provider:
    """The provider for ``cfg``, wrapped in ``RetryingProvider`` (``cfg.max_retries``).

    The scripted provider is returned bare: its replies are fixed, and a
    scripted ``error`` must reach the caller as written.
    Raises ``MissingApiKey`` (one line naming the env var) when the key is not set.
    """
    if cfg.provider == "scripted":
        return ScriptedProvider(config=cfg)
    inner = _CLASSES[cfg.provider](cfg, http_client=http_client)
    return RetryingProvider(inner) if sleep is None else RetryingProvider(inner, sleep=sleep)
