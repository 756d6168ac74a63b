"""Any server that speaks Chat Completions at a ``base_url``: Ollama, vLLM, llama.cpp server.

Same code path as ``OpenAIProvider``; the API key is optional (``api_key_env``
may be omitted) and ``max_tokens`` is sent under its classic name.
"""

from __future__ import annotations

from wippy_agents.llm.providers.openai import OpenAIProvider

__all__ = ["OpenAICompatibleProvider"]


class OpenAICompatibleProvider(OpenAIProvider):
    """Chat Completions against ``config.base_url``; a key is used only when its env var is set.

    If the entry names ``api_key_env`` explicitly, that variable must be set
    (``MissingApiKey`` otherwise): naming it says the server needs it.
    """

    _max_tokens_field = "max_tokens"

    @property
    def _key_required(self) -> bool:  # type: ignore[override]
        return self.config.api_key_env is not None
