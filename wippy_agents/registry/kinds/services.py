"""Supervision kinds: ``process.host`` (a supervisor for spawned processes) and
``process.service`` (a child started at boot)."""

from __future__ import annotations

from .base import KindHandler, RefField

__all__ = ["ProcessHost", "ProcessService"]


class ProcessHost(KindHandler):
    kind = "process.host"
    schema_file = "process.host.json"
    description = "A supervisor that hosts dynamically spawned processes."


class ProcessService(KindHandler):
    kind = "process.service"
    schema_file = "process.service.json"
    description = "A process started at boot on a host, with restart policy and dependencies."
    refs = (
        RefField(path="process", kinds=("process.lua",)),
        RefField(path="host", kinds=("process.host",)),
        RefField(path="depends_on[]", kinds=("process.service",)),
    )
