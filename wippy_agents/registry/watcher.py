"""Hot reload: saved source files become changesets (SPEC §3).

Built on ``watchfiles``' ``RustNotify`` directly rather than ``awatch``: the
watch is armed when ``start`` returns (``awatch`` arms it lazily in a thread, so
a save right after starting could be missed), and a short debounce (30 ms) and
step (5 ms) give ~10 ms from save to changeset instead of the default 1.6 s.

Which YAML files a batch of changes concerns is decided from the current disk
state, not the event types: an editor's atomic save arrives as several
create/modify/delete events on temporary files and the target.

Files are read and parsed in a worker thread (a hostile file never stalls the
event loop). A file with a problem holds back only its own entries: the other
files of the batch still apply (each on its own when they cannot apply
together). Each problem is logged once, as ``file:line: id: message``, until
its file changes to another problem or is fixed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from watchfiles._rust_notify import RustNotify

from ..errors import LoadError, WippyError
from .changeset import Changeset
from .entry import Entry, Problem
from .loader import problems_error, read_file
from .settings import SETTINGS_FILE, AppSettings

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["FileWatcher"]

log = logging.getLogger(__name__)

_YAML = (".yaml", ".yml")


class FileWatcher:
    """Watches an app's sources and applies each saved file as one changeset.

    ``on_error(exc)`` receives the ``LoadError``/``ValidationError`` of a bad
    save (the old version stays live). ``changes_applied`` counts versions.
    """

    def __init__(
        self,
        registry: "Registry",
        settings: AppSettings,
        *,
        on_error: Callable[[Exception], Any] | None = None,
        debounce_ms: int = 30,
        step_ms: int = 5,
    ) -> None:
        self._registry = registry
        self._settings = settings
        self._on_error = on_error
        self._debounce = debounce_ms
        self._step = step_ms
        self._stop = threading.Event()
        self._notify: RustNotify | None = None
        self._task: asyncio.Task | None = None
        self._failed: dict[str, tuple[str, ...]] = {}  # bad YAML file -> its problems (retried on any change)
        self._saved: dict[str, set[str]] = {}  # YAML file -> the saved paths that concern it (this batch)
        self.changes_applied = 0

    def roots(self) -> list[Path]:
        dirs = self._settings.source_dirs()
        if self._settings.app_file is not None:
            dirs.append(self._settings.app_file.parent)
        return dirs

    def start(self) -> None:
        """Arm the watch (synchronously) and start the loop task."""
        roots = [str(p) for p in self.roots()]
        if not roots:
            log.warning("nothing to watch: no source folder exists", extra={"root": str(self._settings.root)})
            return
        self._notify = RustNotify(roots, False, False, 50, True, True)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="registry-watcher")

    async def aclose(self) -> None:
        """Stop watching: the watch thread sees the stop flag within one step."""
        self._stop.set()
        if self._task is not None:
            # not cancelled outright: the thread inside RustNotify.watch must return
            # before the notifier is closed under it
            await asyncio.wait_for(self._task, timeout=5.0)
            self._task = None
        if self._notify is not None:
            self._notify.close()
            self._notify = None

    async def _run(self) -> None:
        notify = self._notify
        assert notify is not None
        while not self._stop.is_set():
            # timeout bounds how long the thread outlives a cancelled watcher
            raw = await asyncio.to_thread(notify.watch, self._debounce, self._step, 200, self._stop)
            if raw == "stop":
                return
            if isinstance(raw, str):
                continue
            try:
                await self.handle_paths({path for _, path in raw})
            except Exception:  # noqa: BLE001 - a bug in one reload must not end hot reload
                log.exception("registry watcher failed to apply a change")

    async def handle_paths(self, paths: set[str]) -> int | None:
        """Apply the YAML files these changed paths concern; returns the last new version.

        Never raises for a bad file: its problems are logged and given to ``on_error``;
        the good files of the same batch still apply.
        """
        files = self._affected(paths)
        if not files:
            return None
        app_file = str(self._settings.app_file or "")
        read = await asyncio.to_thread(_read_all, sorted(files), app_file)
        bad: dict[str, tuple[type, list[Problem]]] = {f: (LoadError, probs) for f, (_, probs) in read.items() if probs}
        good = {f: entries for f, (entries, probs) in read.items() if not probs}
        version = None
        groups = [set(good)] if good else []
        while groups:
            group = groups.pop(0)
            try:
                cs, fresh = self._changeset(group, {f: good[f] for f in group})
                applied = await self._registry.apply(cs) if len(cs) else None
            except WippyError as exc:
                if len(group) > 1:  # apply what can apply: each file on its own
                    groups[:0] = [{f} for f in sorted(group)]
                    continue
                listed = exc.details.get("problems")
                [file] = group
                bad[file] = (type(exc), [Problem(**p) for p in listed] if listed else [Problem(message=str(exc), file=file)])
                continue
            self._succeeded(group, fresh)
            if applied is not None:
                version = applied
                self.changes_applied += 1
        for file, (cls, problems) in sorted(bad.items()):
            self._report(file, cls, problems)
        return version

    def _succeeded(self, files: set[str], fresh: dict[str, Entry]) -> None:
        for file in files:
            self._failed.pop(file, None)
        known = self._registry.file_entries
        for key in [k for k, e in known.items() if e.file in files]:
            del known[key]
        known.update(fresh)

    def _report(self, file: str, cls: type, problems: list[Problem]) -> None:
        """Log the file's problems once (not again while they stay the same) and call ``on_error``."""
        text = tuple(str(p) for p in problems)
        if self._failed.get(file) == text:
            return
        self._failed[file] = text
        for line in text:
            log.error("%s", line, extra={"file": file})
        if self._on_error is not None:
            try:
                self._on_error(problems_error(cls, problems))
            except Exception:  # noqa: BLE001 - the watcher must keep watching
                log.exception("registry watcher error callback raised")

    def _affected(self, paths: set[str]) -> set[str]:
        """The YAML files to apply again; ``self._saved`` maps each to the saved paths that concern it."""
        app_file = str(self._settings.app_file) if self._settings.app_file else None
        source_roots = [str(d) + "/" for d in self._settings.source_dirs()]
        relevant = {p for p in paths if not self._ignored(p)}
        saved: dict[str, set[str]] = {}
        settings_file = str(self._settings.root / SETTINGS_FILE)  # never an entry file
        for p in relevant:
            if p == app_file or (p.endswith(_YAML) and p != settings_file and any(p.startswith(r) for r in source_roots)):
                saved.setdefault(p, set()).add(p)
        for entry in self._registry.snapshot():
            if entry.file:
                for k, v in entry.data.items():
                    if k.endswith("_path") and v in relevant:
                        saved.setdefault(entry.file, set()).add(v)
        files = set(saved)
        if relevant:
            files |= set(self._failed)  # e.g. a missing source file that now exists
        self._saved = saved
        return files

    def _ignored(self, path: str) -> bool:
        """Editor backups, hidden files and folders (.wippy/state.db ...)."""
        try:
            parts = Path(path).relative_to(self._settings.root).parts
        except ValueError:
            parts = Path(path).parts[-1:]
        return any(p.startswith(".") or p.endswith("~") for p in parts)

    def _changeset(self, files: set[str], found: dict[str, list[Entry]]) -> tuple[Changeset, dict[str, Entry]]:
        """One changeset for the current content of ``files`` (their entries read
        in ``found``; a deleted file has none) and the entries read. Raises
        ``LoadError`` for a duplicate id. An entry whose text did not change in
        the file keeps its run-time override."""
        snap = self._registry.snapshot()
        saved = sorted({p for f in files for p in self._saved.get(f, ())}) or sorted(files)
        retried = sorted(f for f in files if not self._saved.get(f))
        reason = "saved " + ", ".join(saved) + (f" (retried {', '.join(retried)})" if retried and saved != retried else "")
        cs = Changeset(base_version=None, author="watcher", reason=reason, origin="file")
        fresh: dict[str, Entry] = {}  # id -> entry as now in the files
        problems: list[Problem] = []
        for file in sorted(files):
            for entry in found.get(file, ()):
                if entry.id in fresh:
                    problems.append(Problem.about(entry, f"duplicate id, also defined at {fresh[entry.id].where()}"))
                    continue
                other = snap.get(entry.id)
                if other is not None and other.file is not None and other.file not in files:
                    problems.append(Problem.about(entry, f"duplicate id, also defined at {other.where()}"))
                fresh[entry.id] = entry
        if problems:
            raise problems_error(LoadError, problems)
        for entry in snap:
            if entry.file in files and entry.id not in fresh:
                cs.discard(entry.id)
        known = self._registry.file_entries
        for entry in fresh.values():
            live = snap.get(entry.id)
            if live is not None and live.origin == "runtime" and entry.same_content(known.get(entry.id)):
                continue  # not edited in the file: the run-time change stands
            cs.put(entry)
        return cs, fresh


def _read_all(files: list[str], app_file: str) -> dict[str, tuple[list[Entry], list[Problem]]]:
    """(In a worker thread.) Each file's entries and problems; a deleted file has neither."""
    out: dict[str, tuple[list[Entry], list[Problem]]] = {}
    for file in files:
        path = Path(file)
        if not path.exists():
            out[file] = ([], [])  # deleted: its entries go
            continue
        out[file] = read_file(path, single_file=file == app_file)
    return out
