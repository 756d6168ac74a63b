"""Observability: OpenTelemetry traces of tasks, turns, model and tool calls, steps and registry changes.

``install(app)`` is called by ``App.open`` last: it reads only the standard
``OTEL_*`` variables (``tracing_enabled``) and, when they turn tracing on,
wraps the node's seams with ``wippy_agents.observability.tracing.Tracing``,
which imports OpenTelemetry (the ``otel`` extra). Off, nothing is imported
or wrapped.
"""

from __future__ import annotations

import logging
from typing import Any

from .settings import tracing_enabled

__all__ = ["install", "tracing_enabled", "TracingOff"]

log = logging.getLogger(__name__)


class TracingOff:
    """``app.tracing`` when tracing is off: nothing is wrapped, nothing of OpenTelemetry imported."""

    enabled = False

    def __repr__(self) -> str:
        return "TracingOff()"


def install(app: Any) -> Any:
    """The app's ``Tracing`` when the ``OTEL_*`` variables turn it on, else a ``TracingOff``."""
    if not tracing_enabled():
        return TracingOff()
    try:
        from .tracing import Tracing
    except ImportError as exc:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed (%s); "
                    "install wippy-agents[otel] to export traces", exc)
        return TracingOff()
    return Tracing.install(app)
