"""The public surface of the model layer and the shipped test doubles is what we mean it to be."""

from __future__ import annotations

import subprocess
import sys

import wippy_agents.llm as llm
import wippy_agents.testing as testing


def test_llm_exports_exactly_the_public_api():
    assert set(llm.__all__) == {
        "Message", "ToolCall", "ToolSpec", "Usage", "ModelReply", "Role", "StopReason",
        "TextDelta", "ToolCallDelta", "Done", "StreamEvent", "event_from_dict",
        "ModelConfig", "ProviderName", "DEFAULT_API_KEY_ENV", "load_script",
        "Provider", "make_provider", "collect", "ReplyBuilder",
        "OpenAIProvider", "OpenAICompatibleProvider", "AnthropicProvider",
        "ScriptedProvider", "ScriptedCall", "ScriptExhausted", "RetryingProvider", "backoff_delay",
        "TokenCounter", "count_tokens", "count_message_tokens", "encoding_for_model", "encoding_name_for_model",
        "cost_usd", "priced_usage",
    }
    for name in llm.__all__:
        assert getattr(llm, name) is not None


def test_testing_exports_the_doubles():
    assert set(testing.__all__) == {"ScriptedModel", "ScriptedCall", "ScriptExhausted", "FakeClock",
                                    "RespxTransport", "mock_http_client"}
    for name in testing.__all__:
        assert getattr(testing, name) is not None


def test_importing_the_layer_does_not_import_the_sdks():
    """The SDKs cost seconds to import; only a provider of their kind loads them."""
    code = ("import sys, wippy_agents.llm, wippy_agents.testing; "
            "print('openai' in sys.modules, 'anthropic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_every_provider_satisfies_the_protocol(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    for cls, provider in [(llm.OpenAIProvider, "openai"), (llm.AnthropicProvider, "anthropic"),
                          (llm.OpenAICompatibleProvider, "openai_compatible")]:
        assert isinstance(cls(llm.ModelConfig(provider=provider, model="m", base_url="http://127.0.0.1:1/v1")),
                          llm.Provider)
    assert isinstance(llm.ScriptedProvider([]), llm.Provider)
    assert isinstance(llm.RetryingProvider(llm.ScriptedProvider([])), llm.Provider)
