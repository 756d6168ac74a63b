"""App settings (SPEC §2): an app directory with an optional ``wippy.yaml``, or
one YAML file holding ``namespace``/``entries`` documents and an optional
``wippy:`` document."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

__all__ = ["AppSettings", "DEFAULT_SOURCES", "SETTINGS_FILE"]

log = logging.getLogger(__name__)

DEFAULT_SOURCES = ("agents", "tools", "prompts")
SETTINGS_FILE = "wippy.yaml"
_KNOWN = {"sources", "store", "node", "max_tasks"}
_LAYER_KEYS = {"tasks"}  # read by other layers from ``extra`` (tasks: lease settings)


@dataclass(frozen=True, kw_only=True)
class AppSettings:
    """Where an app's entries live and which store and node name it uses.

    ``root`` is the app directory (for a single-file app: the file's folder);
    ``app_file`` is set for a single-file app. ``store`` is always a usable URL
    (a relative SQLite path is made absolute against ``root``; a single-file
    app ``x.yaml`` defaults to ``.wippy/x.db`` beside it, so two in one folder
    never share a store). ``node`` is the given name (``node_stable``) or one
    unique to this process, ``<host>-<pid>``. ``max_tasks`` bounds the tasks
    a node runs at once when it claims queued work. Other keys are kept in
    ``extra`` for other layers.

    >>> s = AppSettings.load(".")            # doctest: +SKIP
    >>> s.store                              # doctest: +SKIP
    'sqlite:////abs/app/.wippy/state.db'
    """

    root: Path
    app_file: Path | None = None
    sources: tuple[str, ...] = DEFAULT_SOURCES
    store: str = ""
    node: str = field(default_factory=lambda: default_node_name())
    node_stable: bool = False
    max_tasks: int = 50
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None = None, *, store: str | None = None, node: str | None = None) -> "AppSettings":
        """Read the settings of the app at ``path`` (default: the current directory).

        ``store``/``node`` (the CLI's ``--store``/``--node``) override the file.
        Raises ``ConfigError`` for a missing path, bad YAML or bad values.
        """
        p = Path(path or ".").expanduser().resolve()
        if not p.exists():
            raise ConfigError(f"app {str(p)!r} does not exist; pass --app DIR or --app FILE.yaml")
        if p.is_file():
            root, app_file, raw = p.parent, p, _settings_doc_of(p)
        else:
            root, app_file = p, None
            cfg = p / SETTINGS_FILE
            raw = _read_settings_file(cfg) if cfg.exists() else {}
        return cls.from_mapping(raw, root=root, app_file=app_file, store=store, node=node)

    @classmethod
    def from_mapping(
        cls,
        raw: dict[str, Any],
        *,
        root: Path,
        app_file: Path | None = None,
        store: str | None = None,
        node: str | None = None,
    ) -> "AppSettings":
        where = str(app_file or root / SETTINGS_FILE)
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: settings must be a mapping, got {type(raw).__name__}")
        extra = {k: v for k, v in raw.items() if k not in _KNOWN}
        if set(extra) - _LAYER_KEYS:
            log.warning("unknown settings keys kept for other layers", extra={"file": where, "keys": sorted(extra)})
        default_sources: tuple[str, ...] = () if app_file is not None else DEFAULT_SOURCES
        sources = raw.get("sources", default_sources)
        if isinstance(sources, str):
            sources = [sources]
        if not isinstance(sources, (list, tuple)) or not all(isinstance(s, str) and s for s in sources):
            raise ConfigError(f"{where}: sources must be a list of folder names, got {sources!r}")
        given = node or raw.get("node")
        if given is not None and (not isinstance(given, str) or not given.strip()):
            raise ConfigError(f"{where}: node must be a non-empty string, got {given!r}")
        max_tasks = raw.get("max_tasks", 50)
        if isinstance(max_tasks, bool) or not isinstance(max_tasks, int) or max_tasks < 1:
            raise ConfigError(f"{where}: max_tasks must be a whole number of at least 1, got {max_tasks!r}")
        default_store = f"sqlite:///.wippy/{app_file.stem}.db" if app_file is not None else "sqlite:///.wippy/state.db"
        url = store or raw.get("store") or default_store
        return cls(
            root=root,
            app_file=app_file,
            sources=tuple(sources),
            store=_absolute_store_url(url, root, where),
            node=given or default_node_name(),
            node_stable=given is not None,
            max_tasks=max_tasks,
            extra=extra,
        )

    def source_dirs(self) -> list[Path]:
        """The source folders that exist (a missing one is not an error: apps start empty)."""
        return [d for d in (self.root / s for s in self.sources) if d.is_dir()]

    def with_overrides(self, **changes: Any) -> "AppSettings":
        return replace(self, **changes)


def default_node_name() -> str:
    """A node name unique to this process (``wippy_agents.tasks.nodes.this_process`` agrees)."""
    return f"{socket.gethostname() or 'localhost'}-{os.getpid()}"


def _read_settings_file(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}:{_line(exc)}: malformed YAML: {_problem(exc)}") from None
    return raw or {}


def _settings_doc_of(path: Path) -> dict[str, Any]:
    """The ``wippy:`` document of a single-file app ({} when there is none)."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text("utf-8")) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}:{_line(exc)}: malformed YAML: {_problem(exc)}") from None
    found = [d["wippy"] for d in docs if isinstance(d, dict) and "wippy" in d]
    if len(found) > 1:
        raise ConfigError(f"{path}: more than one 'wippy:' settings document")
    return (found[0] or {}) if found else {}


def _absolute_store_url(url: str, root: Path, where: str) -> str:
    if not isinstance(url, str):
        raise ConfigError(f"{where}: store must be a URL string, got {url!r}")
    if url.startswith("sqlite:///"):
        rest = url[len("sqlite:///") :]
        path = Path(rest) if rest.startswith("/") else root / rest
        return f"sqlite:///{path}"
    if url.startswith(("postgresql://", "postgres://")):
        return url
    raise ConfigError(f"{where}: store {url!r} is not a sqlite:/// or postgresql:// URL")


def _line(exc: yaml.YAMLError) -> int:
    mark = getattr(exc, "problem_mark", None)
    return mark.line + 1 if mark is not None else 1


def _problem(exc: yaml.YAMLError) -> str:
    return getattr(exc, "problem", None) or str(exc).splitlines()[0]
