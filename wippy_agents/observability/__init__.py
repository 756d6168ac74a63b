"""Observability: OpenTelemetry traces of tasks, turns, model and tool calls, steps and registry changes.

``tracing_enabled()`` reads only the standard ``OTEL_*`` variables; the
``Tracing`` wrappers live in ``wippy_agents.observability.tracing``, which
imports OpenTelemetry (the ``otel`` extra) and is loaded only when tracing is on.
"""

from .settings import tracing_enabled

__all__ = ["tracing_enabled"]
