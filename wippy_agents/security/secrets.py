"""Secrets never reach Lua, the model, logs, audit or ``registry show`` (SPEC §3, §8).

Entry values may refer to the environment: ``${env:NAME}`` (or
``${env:NAME:-default}``) and ``${secret:NAME}``. Both are stored as written
(the registry, its history and the store never hold the values) and expanded
where they are used:

* ``shown`` — what Lua (``registry.get``/``find``) and the model (``get_entry``)
  see: ``${env:}`` expanded, every ``${secret:}`` as ``***``. Redaction is by
  origin: a value that came from a secret is masked whatever its field is
  called. Fields whose name says secret (``password``, ``api_key`` ...) are
  masked as well, a second line of defence for values written literally.
* ``displayed`` — what ``registry show`` prints: references as written, with
  ``${secret:}`` as ``***``.
* ``reveal`` — for the runtime alone (a provider's API key, an auth header):
  every reference expanded. Never log or return its result.

>>> shown({"host": "db", "dsn": "${secret:DB_DSN}", "password": "hunter2"}, environ={"DB_DSN": "pg://u:p@h"})
{'host': 'db', 'dsn': '***', 'password': '[redacted]'}
>>> reveal("Bearer ${secret:TOKEN}", environ={"TOKEN": "t0k"})
'Bearer t0k'
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

__all__ = ["REDACTED", "MASK", "is_secret_field", "redact", "shown", "displayed", "reveal", "references",
           "has_secret"]

REDACTED = "[redacted]"
MASK = "***"
_WORDS = frozenset({"password", "passwd", "passphrase", "pwd", "secret", "token", "apikey", "credential",
                    "credentials"})
_PAIRS = frozenset({("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key")})
# ${env:NAME}, ${env:NAME:-default}, ${secret:NAME}
REF = re.compile(r"\$\{(env|secret):([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def is_secret_field(name: str) -> bool:
    """True for names like ``password``, ``api_key``, ``client_secret``, ``auth-token`` (by whole
    words: ``max_output_tokens`` is not one); ``*_env`` names a variable, not a value."""
    words = [w for w in re.split(r"[_\-.\s]+", name.lower()) if w]
    if not words or words[-1] == "env":
        return False
    return any(w in _WORDS for w in words) or tuple(words[-2:]) in _PAIRS


def references(value: Any) -> list[tuple[str, str, str | None]]:
    """Every ``(source, NAME, default)`` reference in the strings of ``value``."""
    out: list[tuple[str, str, str | None]] = []
    _walk(value, lambda s: out.extend((m.group(1), m.group(2), m.group(3)) for m in REF.finditer(s)))
    return out


def has_secret(value: Any) -> bool:
    return any(src == "secret" for src, _, _ in references(value))


def shown(value: Any, *, environ: Mapping[str, str] | None = None) -> Any:
    """What Lua and the model may see (see the module doc)."""
    return _fields(_map(value, _expander(environ, secrets=False)))


def redact(value: Any, *, environ: Mapping[str, str] | None = None) -> Any:
    """Alias of ``shown`` (the name older callers use)."""
    return shown(value, environ=environ)


def displayed(value: Any) -> Any:
    """What ``registry show`` prints: references as written, secrets as ``***``."""
    return _map(value, lambda s: REF.sub(lambda m: MASK if m.group(1) == "secret" else m.group(0), s))


def reveal(value: Any, *, environ: Mapping[str, str] | None = None) -> Any:
    """Every reference expanded, secrets included: for the runtime only."""
    return _map(value, _expander(environ, secrets=True))


def _expander(environ: Mapping[str, str] | None, *, secrets: bool):
    env = os.environ if environ is None else environ

    def one(m: re.Match) -> str:
        source, name, default = m.group(1), m.group(2), m.group(3)
        if source == "secret" and not secrets:
            return MASK
        if name in env:
            return env[name]
        return default if default is not None else ("" if source == "secret" else m.group(0))

    return lambda s: REF.sub(one, s) if "${" in s else s


def _map(value: Any, fn) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {k: _map(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_map(v, fn) for v in value]
    return value


def _walk(value: Any, fn) -> None:
    if isinstance(value, str):
        if "${" in value:
            fn(value)
    elif isinstance(value, dict):
        for v in value.values():
            _walk(v, fn)
    elif isinstance(value, list):
        for v in value:
            _walk(v, fn)


def _fields(value: Any) -> Any:
    """Values of secret-named fields replaced (recursively)."""
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and is_secret_field(k) and v not in (None, "") else _fields(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_fields(v) for v in value]
    return value
