"""``ServerConfig``: an ``mcp.server`` entry read into what it takes to start or reach the server.

``${secret:NAME}`` and ``${env:NAME}`` in ``env`` and ``headers`` values are read
from the node's environment only when the server is started, so the stored
entry (and everything that shows it) never holds the value.

>>> from wippy_agents.registry import Entry, EntryId
>>> e = Entry(id=EntryId("app.mcp:time"), kind="mcp.server", data={"command": ["mcp-server-time"]})
>>> ServerConfig.from_entry(e).transport
'stdio'
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from ..errors import ConfigError
from ..registry import Entry

__all__ = ["ServerConfig", "expand", "tool_entry_data", "visible_name"]

_REF = re.compile(r"\$\{(secret|env):([A-Za-z_][A-Za-z0-9_]*)\}")


def expand(value: str, *, where: str, environ: Mapping[str, str] | None = None) -> str:
    """``value`` with each ``${secret:NAME}`` / ``${env:NAME}`` replaced from the environment.

    Raises ``ConfigError`` naming ``where`` and the variable when one is not set.
    """
    env = os.environ if environ is None else environ

    def one(m: re.Match[str]) -> str:
        got = env.get(m.group(2))
        if got is None:
            raise ConfigError(f"{where}: {m.group(0)} is not set; export {m.group(2)} in the node's environment")
        return got

    return _REF.sub(one, value)


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """One MCP server as its entry describes it (stdio ``command`` or streamable-HTTP ``url``)."""

    id: str
    transport: Literal["stdio", "http"]
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    tools: tuple[str, ...] = ()
    prefix: str = ""
    timeout: float = 60.0
    max_restarts: int = 5
    period: float = 60.0
    fingerprint: str = ""

    @classmethod
    def from_entry(cls, entry: Entry) -> "ServerConfig":
        d = entry.data
        return cls(
            id=str(entry.id),
            transport="http" if d.get("url") else "stdio",
            command=tuple(d.get("command") or ()),
            env=dict(d.get("env") or {}),
            cwd=d.get("cwd"),
            url=d.get("url"),
            headers=dict(d.get("headers") or {}),
            tools=tuple(d.get("tools") or ()),
            prefix=str(d.get("prefix") or ""),
            timeout=float(d.get("timeout") or 60.0),
            max_restarts=int(d.get("max_restarts", 5)),
            period=float(d.get("period") or 60.0),
            fingerprint=json.dumps(d, sort_keys=True, default=str),
        )

    @property
    def digest(self) -> str:
        """A short hash of the definition: tool entries record the one they were listed from."""
        return hashlib.sha256(self.fingerprint.encode()).hexdigest()[:16]

    def offers(self, tool_name: str) -> bool:
        """True when the entry's ``tools:`` globs (none: all) take the server's tool ``tool_name``."""
        return not self.tools or any(fnmatch.fnmatchcase(tool_name, g) for g in self.tools)

    def resolved_env(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        return {k: expand(v, where=f"{self.id} env.{k}", environ=environ) for k, v in self.env.items()}

    def resolved_headers(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        return {k: expand(v, where=f"{self.id} headers.{k}", environ=environ) for k, v in self.headers.items()}

    def working_dir(self, root: Path | None) -> str | None:
        if self.cwd is None:
            return str(root) if root is not None else None
        path = Path(self.cwd)
        return str(path if path.is_absolute() or root is None else root / path)

    def describe(self) -> str:
        return " ".join(self.command) if self.transport == "stdio" else str(self.url)


def tool_entry_data(config: ServerConfig, tool: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(meta, data)`` of the ``mcp.tool`` entry for one listed ``mcp_types.Tool``."""
    ann = tool.annotations.model_dump(by_alias=True, exclude_none=True) if tool.annotations else {}
    idempotent = bool(ann.get("idempotentHint") or ann.get("readOnlyHint"))
    meta: dict[str, Any] = {"type": "tool", "description": tool.description or tool.title or tool.name,
                            "alias": visible_name(config.prefix, tool.name)}
    data: dict[str, Any] = {"server": config.id, "tool": tool.name, "input_schema": _plain(tool.input_schema),
                            "idempotent": idempotent, "listed_from": config.digest}
    if ann:
        data["annotations"] = ann
    if getattr(tool, "output_schema", None):
        data["output_schema"] = _plain(tool.output_schema)
    return meta, data


def visible_name(prefix: str, name: str) -> str:
    """The name the model sees: ``prefix + name`` made to fit a tool name (letters, digits, ``_``, ``-``)."""
    text = re.sub(r"[^A-Za-z0-9_\-]", "_", prefix + name)
    return text if re.match(r"[A-Za-z_]", text) else "_" + text


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
