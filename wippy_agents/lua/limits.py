"""Per-entry resource limits of a Lua state and the duration syntax they use.

``Limits.from_entry_value`` reads the ``limits:`` field of an entry::

    limits: {memory: 16777216, instructions: 1000000, timeout: "2s"}

``memory`` also accepts ``"16MB"``/``"16MiB"``; ``timeout`` accepts seconds or a
duration string (``"100ms"``, ``"5s"``, ``"2m"``, ``"1h"``).  Bad values raise
``ConfigError`` naming the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from wippy_agents.errors import ConfigError

__all__ = ["Limits", "parse_duration", "parse_size"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 10**6, "mib": 2**20, "gb": 10**9, "gib": 2**30}


def parse_duration(value: Any, *, where: str = "duration") -> float:
    """Seconds from ``5``, ``0.5``, ``"5s"``, ``"100ms"``, ``"2m"`` or ``"1h"``; raises ``ConfigError``."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a duration like '5s' or '100ms', got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ConfigError(f"{where}: a duration cannot be negative, got {value!r}")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ConfigError(f"{where}: expected a duration like '5s' or '100ms', got {value!r}")


def parse_size(value: Any, *, where: str = "size") -> int:
    """Bytes from ``1048576``, ``"64MiB"``, ``"16MB"``; raises ``ConfigError``."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            return int(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()]
    raise ConfigError(f"{where}: expected a positive size in bytes or like '64MiB', got {value!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """Resource limits of one Lua state (one function call or one process).

    >>> Limits(max_memory=16 << 20, timeout=2.0).max_instructions
    100000000
    """

    max_memory: int = 64 << 20
    max_instructions: int = 10**8
    timeout: float = 30.0

    @classmethod
    def from_entry_value(cls, value: Any, *, where: str = "limits") -> Limits:
        """Parse an entry's ``limits:`` mapping (missing keys keep the defaults)."""
        if value is None:
            return cls()
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping with memory/instructions/timeout, got {value!r}")
        value = dict(value)
        for alias, name in (("max_memory", "memory"), ("max_instructions", "instructions")):
            if alias in value:  # SPEC's spelling (max_memory) and the short one are both accepted
                if name in value:
                    raise ConfigError(f"{where}: give {name} or {alias}, not both")
                value[name] = value.pop(alias)
        unknown = set(value) - {"memory", "instructions", "timeout"}
        if unknown:
            raise ConfigError(f"{where}: unknown limit(s) {sorted(unknown)!r}; use max_memory, max_instructions, timeout")
        base = cls()
        memory = parse_size(value["memory"], where=f"{where}.memory") if "memory" in value else base.max_memory
        instructions = value.get("instructions", base.max_instructions)
        if isinstance(instructions, bool) or not isinstance(instructions, int) or instructions <= 0:
            raise ConfigError(f"{where}.instructions: expected a positive integer, got {instructions!r}")
        timeout = parse_duration(value["timeout"], where=f"{where}.timeout") if "timeout" in value else base.timeout
        if timeout <= 0:
            raise ConfigError(f"{where}.timeout: must be positive, got {value['timeout']!r}")
        return cls(max_memory=memory, max_instructions=instructions, timeout=timeout)
