"""Test doubles shipped with the package.

* ``ScriptedModel`` — the scripted provider: replays replies in order, fails
  loudly on a call past its script, ``assert_complete()`` checks every reply was used.
* ``FakeClock`` — ``sleep`` that returns at once and records the waits.
* ``RespxTransport`` / ``mock_http_client`` — mock the real SDKs' HTTP at the
  transport with a respx router (tests need ``respx`` installed).
"""

from wippy_agents.llm.providers.scripted import ScriptedCall, ScriptedProvider, ScriptExhausted
from wippy_agents.testing.clock import FakeClock

ScriptedModel = ScriptedProvider


def __getattr__(name: str):
    # httpx2 is loaded only by tests that mock HTTP.
    if name in ("RespxTransport", "mock_http_client"):
        from wippy_agents.testing import http

        return getattr(http, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["ScriptedModel", "ScriptedCall", "ScriptExhausted", "FakeClock", "RespxTransport", "mock_http_client"]
