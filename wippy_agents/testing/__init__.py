"""Test doubles shipped with the package.

* ``ScriptedModel`` — the scripted provider: replays replies in order, fails
  loudly on a call past its script, ``assert_complete()`` checks every reply was used.
* ``FakeClock`` — ``sleep`` that returns at once and records the waits.
* ``RespxTransport`` / ``mock_http_client`` — mock the real SDKs' HTTP at the
  transport with a respx router (tests need ``respx`` installed).
"""

from wippy_agents.llm.providers.scripted import ScriptedCall, ScriptedProvider, ScriptExhausted
from wippy_agents.testing.clock import FakeClock
from wippy_agents.testing.http import RespxTransport, mock_http_client

ScriptedModel = ScriptedProvider

__all__ = ["ScriptedModel", "ScriptedCall", "ScriptExhausted", "FakeClock", "RespxTransport", "mock_http_client"]
