"""Task engine options from an app's settings (the ``tasks:`` block of ``wippy.yaml``).

::

    tasks:
      lease_seconds: 15        # or "15s": how long a task stays ours without a heartbeat
      heartbeat_seconds: 5     # how often a node renews its leases
      claim_interval: 5        # how often a node looks for expired leases (0: never)

Arguments given to ``App.open`` win over the file; missing values take the
engine's defaults (15 s lease, 5 s heartbeat, claim every lease/3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ConfigError
from ..lua.limits import parse_duration

__all__ = ["EngineOptions", "engine_options"]

_KEYS = ("lease_seconds", "heartbeat_seconds", "claim_interval")


@dataclass(frozen=True, kw_only=True)
class EngineOptions:
    """The lease settings a ``TaskEngine`` is created with."""

    lease_seconds: float = 15.0
    heartbeat_seconds: float = 5.0
    claim_interval: float | None = None

    def as_kwargs(self) -> dict[str, Any]:
        return {"lease_seconds": self.lease_seconds, "heartbeat_seconds": self.heartbeat_seconds,
                "claim_interval": self.claim_interval}


def engine_options(
    extra: Mapping[str, Any] | None, *, where: str = "wippy.yaml", **given: float | None
) -> EngineOptions:
    """Options from the settings' ``tasks:`` block, overridden by ``given`` values that are not None.

    Raises ``ConfigError`` naming the key for an unknown key or a bad duration,
    and when the heartbeat is not shorter than the lease.
    """
    block = (extra or {}).get("tasks") or {}
    if not isinstance(block, Mapping):
        raise ConfigError(f"{where}: tasks: must be a mapping with {', '.join(_KEYS)}, got {block!r}")
    unknown = sorted(set(block) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{where}: tasks: unknown key(s) {unknown}; known: {list(_KEYS)}")
    values: dict[str, Any] = {
        k: parse_duration(v, where=f"{where}: tasks.{k}") for k, v in block.items() if v is not None
    }
    values.update({k: v for k, v in given.items() if k in _KEYS and v is not None})
    options = EngineOptions(**values)
    if not 0 < options.heartbeat_seconds < options.lease_seconds:
        raise ConfigError(
            f"{where}: tasks.heartbeat_seconds ({options.heartbeat_seconds:g}) must be > 0 and shorter than "
            f"tasks.lease_seconds ({options.lease_seconds:g})"
        )
    return options
