"""Configuration kinds: ``registry.entry`` (free-form settings) and ``security.policy``."""

from __future__ import annotations

from .base import KindHandler

__all__ = ["RegistryEntry", "SecurityPolicy"]


class RegistryEntry(KindHandler):
    kind = "registry.entry"
    schema_file = "registry.entry.json"
    description = "Free-form settings read with registry.get (e.g. app.db:postgres with host and port)."
    open_fields = True


class SecurityPolicy(KindHandler):
    kind = "security.policy"
    schema_file = "security.policy.json"
    description = "Allow/deny rules over actions and resources (glob patterns); deny wins, default deny."
