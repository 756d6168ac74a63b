"""How tracing joins an App: only when the ``OTEL_*`` variables turn it on (else nothing is imported)."""

from __future__ import annotations

import logging
from typing import Any

from ..app import on_open
from .settings import tracing_enabled

__all__ = ["install"]

log = logging.getLogger(__name__)


@on_open
async def install(app: Any) -> None:
    if not tracing_enabled():
        return
    try:
        from .tracing import Tracing
    except ImportError as exc:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed (%s); "
                    "install wippy-agents[otel] to export traces", exc)
        return
    app.extensions["tracing"] = Tracing.install(app)
