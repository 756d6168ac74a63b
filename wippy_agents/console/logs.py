"""Node logging: one line per record on stderr, as text or JSON lines (SPEC §9)."""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["configure"]

_STD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in vars(record).items() if k not in _STD}
        who = fields.pop("pid", None) or fields.pop("entry", None) or record.name
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        extra = " ".join(f"{k}={v!r}" for k, v in fields.items())
        line = f"{stamp} {record.levelname:<5} {who} {record.getMessage()}"
        if extra:
            line += " " + extra
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in _STD:
                data[k] = v
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=repr)


def configure(*, level: str = "INFO", fmt: str = "text") -> None:
    """Install the stderr handler on the ``wippy_agents`` logger (idempotent)."""
    logger = logging.getLogger("wippy_agents")
    for h in list(logger.handlers):
        if getattr(h, "_wippy", False):
            logger.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler._wippy = True  # type: ignore[attr-defined]
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
