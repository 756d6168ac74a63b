"""Secrets never reach Lua or the model (SPEC §8).

API keys are named by environment variable (``api_key_env``) and read only by
the providers; but an entry may still hold a secret value, e.g.
``password: ${env:DB_PASSWORD}`` (substituted at load). Entry data shown to
Lua (``registry.get``/``find``) or to the model (``get_entry``) goes through
``redact``: a field whose name says it is a secret has its value replaced.

>>> redact({"host": "db", "password": "hunter2", "api_key_env": "OPENAI_API_KEY", "nested": {"token": "t"}})
{'host': 'db', 'password': '[redacted]', 'api_key_env': 'OPENAI_API_KEY', 'nested': {'token': '[redacted]'}}
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["REDACTED", "is_secret_field", "redact"]

REDACTED = "[redacted]"
_WORDS = frozenset({"password", "passwd", "passphrase", "pwd", "secret", "token", "apikey", "credential",
                    "credentials"})
_PAIRS = frozenset({("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key")})


def is_secret_field(name: str) -> bool:
    """True for names like ``password``, ``api_key``, ``client_secret``, ``auth-token`` (by whole
    words: ``max_output_tokens`` is not one); ``*_env`` names a variable, not a value."""
    words = [w for w in re.split(r"[_\-.\s]+", name.lower()) if w]
    if not words or words[-1] == "env":
        return False
    return any(w in _WORDS for w in words) or tuple(words[-2:]) in _PAIRS


def redact(value: Any) -> Any:
    """A copy of ``value`` with the values of secret-named fields replaced (recursively)."""
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and is_secret_field(k) and v not in (None, "") else redact(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
