"""The model layer: message types, providers (openai, anthropic, openai_compatible, scripted),
streaming, retries, offline token counting and pricing.

    >>> provider = make_provider(ModelConfig.from_entry(entry))          # doctest: +SKIP
    >>> async for event in provider.stream([Message.user("hi")]):        # doctest: +SKIP
    ...     print(event)
"""

from wippy_agents.llm.base import Provider, ReplyBuilder, collect
from wippy_agents.llm.config import DEFAULT_API_KEY_ENV, ModelConfig, ProviderName, load_script
from wippy_agents.llm.pricing import cost_usd, priced_usage
from wippy_agents.llm.providers import ScriptedCall, ScriptedProvider, ScriptExhausted, make_provider
from wippy_agents.llm.retry import RetryingProvider, backoff_delay
from wippy_agents.llm.tokens import (TokenCounter, count_message_tokens, count_tokens, encoding_for_model,
                                     encoding_name_for_model)
from wippy_agents.llm.types import (Done, Message, ModelReply, Role, StopReason, StreamEvent, TextDelta, ToolCall,
                                    ToolCallDelta, ToolSpec, Usage, event_from_dict)

__all__ = [
    # values
    "Message", "ToolCall", "ToolSpec", "Usage", "ModelReply", "Role", "StopReason",
    "TextDelta", "ToolCallDelta", "Done", "StreamEvent", "event_from_dict",
    # configuration and providers
    "ModelConfig", "ProviderName", "DEFAULT_API_KEY_ENV", "load_script",
    "Provider", "make_provider", "collect", "ReplyBuilder",
    "OpenAIProvider", "OpenAICompatibleProvider", "AnthropicProvider",
    "ScriptedProvider", "ScriptedCall", "ScriptExhausted",
    "RetryingProvider", "backoff_delay",
    # tokens and money
    "TokenCounter", "count_tokens", "count_message_tokens", "encoding_for_model", "encoding_name_for_model",
    "cost_usd", "priced_usage",
]


def __getattr__(name: str):
    # The SDK-backed providers load their SDK (seconds) only when asked for.
    if name in ("OpenAIProvider", "OpenAICompatibleProvider", "AnthropicProvider"):
        from wippy_agents.llm import providers

        return getattr(providers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
