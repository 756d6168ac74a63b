"""The YAML loader: entry files under an app's sources -> ``Entry`` values.

An entry file holds one or more documents ``{namespace, entries: [...]}``. In
each entry, every field other than name/kind/meta goes to ``data``; a top-level
``file://path`` string (``source: file://weather.lua``) is read relative to the
YAML file (text in the field, the path in ``<field>_path``); ``${env:NAME}``
(or ``${env:NAME:-default}``) anywhere in a string reads the environment at
load time. A YAML file without ``namespace``/``entries`` documents (a scripted
model's replies, say) is not an entry file and is skipped.
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
from .settings import AppSettings
from .yamlio import LineDict, load_documents, plain, yaml_error_line, yaml_error_text

__all__ = ["LoadResult", "load_sources", "load_file", "parse_entries", "entry_files", "problems_error"]

log = logging.getLogger(__name__)

_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_YAML_SUFFIXES = (".yaml", ".yml")
_DOC_KEYS = {"namespace", "entries"}


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
    """One error for many problems: the first as the message, all in ``details``."""
    more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
    return cls(f"{problems[0]}{more}", problems=[p.to_dict() for p in problems])


def entry_files(settings: AppSettings) -> list[Path]:
    """Every YAML file under the sources (plus the app file of a single-file app), sorted."""
    files: list[Path] = [settings.app_file] if settings.app_file else []
    for folder in settings.source_dirs():
        for path in sorted(folder.rglob("*")):
            if path.suffix in _YAML_SUFFIXES and path.is_file() and not _hidden(path.relative_to(folder)):
                files.append(path)
    return files


def load_sources(settings: AppSettings, *, environ: dict[str, str] | None = None) -> LoadResult:
    """Load every entry file of the app; never raises for a bad file (see ``problems``).

    A duplicate id across files is a problem naming both places.
    """
    files = entry_files(settings)
    entries: list[Entry] = []
    problems: list[Problem] = []
    seen: dict[str, Entry] = {}
    loaded: list[Path] = []
    for path in files:
        try:
            found = load_file(path, environ=environ, single_file=path == settings.app_file)
        except LoadError as exc:
            problems.extend(_problems_of(exc, path))
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
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise LoadError(f"{path}: file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError(f"{path}: cannot read: {exc}", file=str(path)) from None
    entries, problems = parse_entries(text, path=path, environ=environ, single_file=single_file)
    if problems:
        raise problems_error(LoadError, problems)
    return entries


def parse_entries(
    text: str, *, path: Path, environ: dict[str, str] | None = None, single_file: bool = False
) -> tuple[list[Entry], list[Problem]]:
    """Parse entry documents from ``text`` (``path`` locates it and anchors ``file://``)."""
    where = str(path)
    try:
        docs = load_documents(text)
    except yaml.YAMLError as exc:
        return [], [Problem(message=f"malformed YAML: {yaml_error_text(exc)}", file=where, line=yaml_error_line(exc))]
    env = os.environ if environ is None else environ
    entries: list[Entry] = []
    problems: list[Problem] = []
    for doc in docs:
        line = getattr(doc, "line", 1)
        if isinstance(doc, dict) and "wippy" in doc and len(doc) == 1:
            if not single_file:
                problems.append(Problem(message="a 'wippy:' settings document belongs in wippy.yaml", file=where, line=line))
            continue
        if not isinstance(doc, dict) or not (_DOC_KEYS & set(doc)):
            log.debug("skipping a YAML document that is not an entry document", extra={"file": where, "line": line})
            continue
        entries.extend(_parse_doc(doc, path, env, problems))
    return entries, problems


def _parse_doc(doc: LineDict, path: Path, env: Any, problems: list[Problem]) -> Iterable[Entry]:
    where, line = str(path), doc.line
    unknown = set(doc) - _DOC_KEYS
    if unknown:
        problems.append(Problem(message=f"unknown document keys {sorted(unknown)}; expected namespace and entries", file=where, line=line))
    ns = doc.get("namespace")
    if not isinstance(ns, str) or not NAMESPACE_RE.fullmatch(ns):
        problems.append(Problem(message=f"namespace {ns!r} must be dotted identifiers like 'app.tools'", file=where, line=line))
        return
    items = doc.get("entries") or []
    if not isinstance(items, list):
        problems.append(Problem(message="entries must be a list", file=where, line=doc.key_lines.get("entries", line)))
        return
    for item in items:
        entry = _parse_entry(item, ns, path, env, problems)
        if entry is not None:
            yield entry


def _parse_entry(item: Any, ns: str, path: Path, env: Any, problems: list[Problem]) -> Entry | None:
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
    key_lines = dict(item.key_lines)
    before = len(problems)
    meta = _substitute(plain(meta), env, problems, label, where, key_lines.get("meta", line))
    data: dict[str, Any] = {}
    for key, value in item.items():
        if key in ("name", "kind", "meta"):
            continue
        kline = key_lines.get(str(key), line)
        value = _substitute(plain(value), env, problems, label, where, kline)
        if isinstance(value, str) and value.startswith("file://"):
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
        data[str(key)] = value
    if len(problems) > before:
        return None
    return Entry(id=entry_id, kind=kind, meta=meta, data=data, file=where, line=line, origin="file", field_lines=key_lines)


def _substitute(value: Any, env: Any, problems: list[Problem], label: str, where: str, line: int) -> Any:
    """Replace ``${env:NAME}`` in every string; a missing variable is a problem."""
    if isinstance(value, str):
        if "${env:" not in value:
            return value

        def repl(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(
                Problem(message=f"environment variable {name!r} is not set (write ${{env:{name}:-default}} for a default)", entry=label, file=where, line=line)
            )
            return m.group(0)

        return _ENV.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, env, problems, label, where, line) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, problems, label, where, line) for v in value]
    return value


def _problems_of(exc: LoadError, path: Path) -> list[Problem]:
    found = exc.details.get("problems")
    if found:
        return [Problem(**p) for p in found]
    return [Problem(message=str(exc).removeprefix(f"{path}: "), file=str(path), line=1)]


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") or part.endswith("~") for part in rel.parts)
