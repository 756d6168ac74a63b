"""The YAML loader: entry files under an app's sources -> ``Entry`` values.

An entry file holds one or more documents ``{namespace, entries: [...]}``. In
each entry, every field other than name/kind/meta goes to ``data``; a top-level
``file://path`` string (``source: file://weather.lua``) is read relative to the
YAML file (text in the field, the path in ``<field>_path``); ``${env:NAME}``
(or ``${env:NAME:-default}``) and ``${secret:NAME}`` in a string are checked
(the variable must be set) and kept as written: they are expanded where they
are used, never stored expanded. Every YAML document under the sources must be an entry document
(a mapping with ``namespace`` and ``entries``, optionally ``version: "1.0"``);
anything else is a problem naming the file and line. Parsing never raises:
a file too large, not UTF-8, too deep, an alias bomb, or one the parser chokes
on (``RecursionError``, ``MemoryError``) is one problem naming the file.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..errors import LoadError, ValidationError
from .entry import Entry, Problem
from .ids import EntryId, NAMESPACE_RE
from .settings import SETTINGS_FILE, AppSettings
from .suggest import suggest
from .yamlio import MAX_FILE_BYTES, LineDict, load_documents, may_alias, plain, yaml_error_line, yaml_error_text

__all__ = ["LoadResult", "load_sources", "load_file", "read_file", "parse_entries", "entry_files", "problems_error"]

log = logging.getLogger(__name__)

_REF = re.compile(r"\$\{(env|secret):([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_YAML_SUFFIXES = (".yaml", ".yml")
_DOC_KEYS = {"namespace", "entries"}
_DOC_VERSIONS = ("1.0",)  # Wippy's document key ``version: "1.0"``
_ENTRY_HEAD = frozenset({"name", "kind", "meta"})  # the fields that are not data


@dataclass(frozen=True, kw_only=True)
class LoadResult:
    """Entries from the files that loaded, and a problem for each that did not."""

    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def raise_for_problems(self) -> None:
        """Raise ``LoadError`` listing every problem (nothing to do when there is none)."""
        if self.problems:
            raise problems_error(LoadError, self.problems)


def problems_error(cls: type, problems: list[Problem]):
    """One error for many problems: every problem, one line each (all in ``details`` too)."""
    return cls("\n".join(str(p) for p in problems), problems=[p.to_dict() for p in problems])


def entry_files(settings: AppSettings) -> list[Path]:
    """Every YAML file under the sources (plus the app file of a single-file app), sorted."""
    files: list[Path] = [settings.app_file] if settings.app_file else []
    settings_file = settings.root / SETTINGS_FILE  # the app's settings, never an entry file
    for folder in settings.source_dirs():
        for path in sorted(folder.rglob("*")):
            if (path.suffix in _YAML_SUFFIXES and path.is_file() and not _hidden(path.relative_to(folder))
                    and path != settings_file and path not in files):
                files.append(path)
    return files


def load_sources(settings: AppSettings, *, environ: dict[str, str] | None = None, partial: bool = False) -> LoadResult:
    """Load every entry file of the app; never raises for a bad file (see ``problems``).

    A duplicate id across files is a problem naming both places. A file with a
    problem contributes no entries, unless ``partial`` (lint: the entries that
    parsed are still validated).
    """
    files = entry_files(settings)
    entries: list[Entry] = []
    problems: list[Problem] = []
    seen: dict[str, Entry] = {}
    loaded: list[Path] = []
    for path in files:
        found, bad = read_file(path, environ=environ, single_file=path == settings.app_file)
        if bad:
            problems.extend(bad)
            if not partial:
                continue
        loaded.append(path)
        for entry in found:
            first = seen.setdefault(entry.id, entry)
            if first is not entry:
                problems.append(Problem.about(entry, f"duplicate id, also defined at {first.where()}"))
            else:
                entries.append(entry)
    return LoadResult(entries=entries, problems=problems, files=loaded)


def load_file(path: Path, *, environ: dict[str, str] | None = None, single_file: bool = False) -> list[Entry]:
    """The entries one file defines; raises ``LoadError`` (every problem of the file in details)."""
    entries, problems = read_file(path, environ=environ, single_file=single_file)
    if problems:
        raise problems_error(LoadError, problems)
    return entries


def read_file(
    path: Path, *, environ: dict[str, str] | None = None, single_file: bool = False
) -> tuple[list[Entry], list[Problem]]:
    """``(entries, problems)`` of one file; never raises. ``entries`` are the
    ones that parsed (a caller applying files holds back a file with problems whole;
    lint validates them still, to report every problem at once)."""
    where = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return [], [Problem(message=f"file too large ({size} bytes; entry files are at most {MAX_FILE_BYTES})", file=where, line=1)]
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], [Problem(message="file not found", file=where, line=1)]
    except OSError as exc:
        return [], [Problem(message=f"cannot read: {exc.strerror or exc}", file=where, line=1)]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return [], [Problem(message=f"not UTF-8 text (byte {exc.start}: {exc.reason})", file=where, line=line)]
    return parse_entries(text, path=path, environ=environ, single_file=single_file)


def parse_entries(
    text: str, *, path: Path, environ: dict[str, str] | None = None, single_file: bool = False
) -> tuple[list[Entry], list[Problem]]:
    """Parse entry documents from ``text`` (``path`` locates it and anchors ``file://``); never raises."""
    where = str(path)
    aliases = may_alias(text)
    try:
        docs = load_documents(text, aliases=aliases)
    except yaml.YAMLError as exc:
        return [], [Problem(message=f"malformed YAML: {yaml_error_text(exc)}", file=where, line=yaml_error_line(exc))]
    except MemoryError:
        return [], [Problem(message="malformed YAML: out of memory while parsing", file=where, line=1)]
    except Exception as exc:  # noqa: BLE001 - the parser must not take the node down
        return [], [Problem(message=f"malformed YAML: {type(exc).__name__}: {exc}", file=where, line=1)]
    env = os.environ if environ is None else environ
    # values are copied only when an alias may share them between entries, and
    # walked for ${env:}/${secret:} references only when the text has one
    shape = _Shape(copy=aliases, refs="${" in text)
    entries: list[Entry] = []
    problems: list[Problem] = []
    for doc in docs:
        line = getattr(doc, "line", 1)
        if isinstance(doc, dict) and "wippy" in doc and len(doc) == 1:
            if not single_file:
                problems.append(Problem(message="a 'wippy:' settings document belongs in wippy.yaml", file=where, line=line))
            continue
        if not isinstance(doc, dict):
            problems.append(Problem(
                message=f"an entry file's top level must be a mapping with namespace and entries, got {_kind_of(doc)}",
                file=where, line=line,
            ))
            continue
        if single_file and not (_DOC_KEYS & set(doc)):
            continue  # the app file may hold other documents (settings of other layers)
        entries.extend(_parse_doc(doc, path, env, problems, shape))
    return entries, problems


def _kind_of(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class _Shape:
    copy: bool
    refs: bool


def _parse_doc(doc: LineDict, path: Path, env: Any, problems: list[Problem], shape: _Shape) -> Iterable[Entry]:
    where, line = str(path), doc.line
    for key in sorted(set(doc) - _DOC_KEYS - {"version"}, key=str):
        problems.append(Problem(
            message=f"unknown document key {key!r}{suggest(str(key), [*_DOC_KEYS, 'version'])}; a document has namespace, entries and version",
            file=where, line=doc.key_lines.get(str(key), line),
        ))
    if "version" in doc and str(doc["version"]) not in _DOC_VERSIONS:
        problems.append(Problem(message=f"document version {doc['version']!r} is not supported; write version: \"1.0\"",
                                file=where, line=doc.key_lines.get("version", line)))
    ns = doc.get("namespace")
    if ns is None:
        problems.append(Problem(message="missing namespace: a document needs namespace: like 'app.tools'", file=where, line=line))
        return
    if not isinstance(ns, str) or not NAMESPACE_RE.fullmatch(ns):
        problems.append(Problem(message=f"namespace {ns!r} must be dotted identifiers like 'app.tools'", file=where,
                                line=doc.key_lines.get("namespace", line)))
        return
    items = doc.get("entries") or []
    if not isinstance(items, list):
        problems.append(Problem(message="entries must be a list", file=where, line=doc.key_lines.get("entries", line)))
        return
    for item in items:
        entry = _parse_entry(item, ns, path, env, problems, shape)
        if entry is not None:
            yield entry


def _parse_entry(item: Any, ns: str, path: Path, env: Any, problems: list[Problem], shape: _Shape) -> Entry | None:
    where = str(path)
    line = getattr(item, "line", None)
    if not isinstance(item, dict):
        problems.append(Problem(message=f"an entry must be a mapping, got {type(item).__name__}", file=where, line=line))
        return None
    name = item.get("name")
    label = f"{ns}:{name}" if isinstance(name, str) else f"{ns}:<entry at line {line}>"
    if not isinstance(name, str):
        problems.append(Problem(message="missing required field 'name'", entry=label, file=where, line=line))
        return None
    try:
        entry_id = EntryId.of(ns, name)
    except ValidationError as exc:
        problems.append(Problem(message=str(exc), entry=label, file=where, line=line))
        return None
    kind = item.get("kind")
    if not isinstance(kind, str) or not kind:
        problems.append(Problem(message="missing required field 'kind'", entry=label, file=where, line=line))
        return None
    meta = item.get("meta") or {}
    if not isinstance(meta, dict):
        problems.append(Problem(message="meta must be a mapping", entry=label, file=where, line=item.key_lines.get("meta", line)))
        return None
    key_lines = item.key_lines  # the parse's own dict: nothing else holds it
    before = len(problems)
    copy, refs = shape.copy, shape.refs
    if copy:
        meta = plain(meta)
    if refs:
        _substitute(meta, env, problems, label, where, key_lines.get("meta", line))
    data: dict[str, Any] = {}
    for key, value in item.items():
        if key in _ENTRY_HEAD:
            continue
        if copy:
            value = plain(value)
        if refs:
            _substitute(value, env, problems, label, where, key_lines.get(str(key), line))
        if type(value) is str and value.startswith("file://"):
            kline = key_lines.get(str(key), line)
            target = (path.parent / value[len("file://") :]).resolve()
            try:
                value = target.read_text("utf-8")
            except FileNotFoundError:
                problems.append(Problem(message=f"{key}: file {str(target)!r} not found", entry=label, file=where, line=kline))
                continue
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(Problem(message=f"{key}: cannot read {str(target)!r}: {exc}", entry=label, file=where, line=kline))
                continue
            data[str(key)] = value
            data[f"{key}_path"] = str(target)
            continue
        data[key if type(key) is str else str(key)] = value
    if len(problems) > before:
        return None
    return Entry(id=entry_id, kind=kind, meta=meta, data=data, file=where, line=line, origin="file", field_lines=key_lines)


def _substitute(value: Any, env: Any, problems: list[Problem], label: str, where: str, line: int) -> Any:
    """Check the ``${env:NAME}`` / ``${secret:NAME}`` references in every string (a
    variable that is not set is a problem); the value is kept as written: references
    are expanded where they are used (``wippy_agents.security.secrets``), so no
    registry version, store table or ``registry show`` ever holds what they name."""
    if isinstance(value, str):
        if "${" not in value:
            return value
        for m in _REF.finditer(value):
            source, name, default = m.group(1), m.group(2), m.group(3)
            if name in env or (source == "env" and default is not None):
                continue
            hint = f" (write ${{env:{name}:-default}} for a default)" if source == "env" else ""
            what = "environment variable" if source == "env" else "secret (an environment variable)"
            problems.append(Problem(message=f"{what} {name!r} is not set{hint}", entry=label, file=where, line=line))
        return value
    if isinstance(value, dict):
        for v in value.values():
            _substitute(v, env, problems, label, where, line)
    elif isinstance(value, list):
        for v in value:
            _substitute(v, env, problems, label, where, line)
    return value


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") or part.endswith("~") for part in rel.parts)
