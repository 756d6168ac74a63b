"""The versioned, transactional registry: one live immutable snapshot, changed
only by whole changesets that are validated, guarded, persisted as one store
version, then published.

>>> reg = Registry(store, author_default="cli")              # doctest: +SKIP
>>> await reg.load(AppSettings.load("."))                     # doctest: +SKIP
>>> cs = reg.changeset(author="cli:root", reason="new db")    # doctest: +SKIP
>>> cs.create({"id": "app.db:main", "kind": "registry.entry", "host": "db"})  # doctest: +SKIP
>>> await reg.apply(cs)                                       # doctest: +SKIP
7
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import replace
from typing import Any, Awaitable, Callable, Iterable, Mapping, Sequence

from ..errors import LoadError, StaleVersion, StoreError, ValidationError, VersionNotFound
from ..store.base import AuditRecord, VersionRecord
from .changeset import Change, Changeset, resolve
from .entry import Entry, Problem
from .history import MemoryHistory, apply_changes, file_saved_since, new_record, overlay, persistence, state_at
from .loader import problems_error
from .startup import MARKER, encode_entries, file_made, gc_paused, read_sources
from .notify import Subscriber, Subscribers
from .settings import AppSettings
from .snapshot import Snapshot
from .validation import Validator, derive_index, validate_state

__all__ = ["Registry", "WriteGuard"]

log = logging.getLogger(__name__)

# async fn(actor, changes: list[Change]) -> None; raises PermissionDenied to refuse.
WriteGuard = Callable[[Any, Sequence[Change]], Awaitable[None]]

_RETRIES = 5  # a changeset with base_version=None is retried after losing a race to another node


class Registry:
    """The live registry of one node over a store (``None``: history in memory).

    ``get``/``find``/``snapshot`` never block. ``apply``/``rollback``/``load``
    serialise on one lock and one store round trip each. ``close`` stops the
    follower, the watcher and subscriber workers.
    """

    def __init__(self, store: Any = None, *, author_default: str = "system", builtins: Iterable[Entry] = ()) -> None:
        self._store = store if store is not None else MemoryHistory()
        self.author_default = author_default
        self._builtins = {str(e.id): e.evolve(origin="builtin") for e in builtins}
        self._live = Snapshot(0, self._builtins)
        self._lock = asyncio.Lock()
        self._validators: list[Validator] = []
        self._guards: list[WriteGuard] = []
        self._subs = Subscribers()
        self._tasks: set[asyncio.Task] = set()
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self.settings: AppSettings | None = None
        self.unsaved_changes = 0  # load(persist=False): file changes not yet written as a version
        self._file_reads: list[Any] = []  # the files as read at load (entries decoded on first use)
        self._file_entries: dict[str, Entry] | None = {}
        # Who makes the versions written here (recorded on each: SPEC §3); set by the composition root.
        self.node = ""
        self.host = ""

    # -- reading (the live snapshot) ------------------------------------------
    @property
    def store(self) -> Any:
        return self._store

    @property
    def version(self) -> int:
        return self._live.version

    def snapshot(self) -> Snapshot:
        """The live snapshot: immutable, safe to keep while the registry moves on."""
        return self._live

    def get(self, entry_id: str) -> Entry | None:
        return self._live._entries.get(entry_id)

    def find(self, criteria: Mapping[str, Any] | None = None, **kw: Any) -> list[Entry]:
        return self._live.find(criteria, **kw)

    # -- hooks -----------------------------------------------------------------
    def add_validator(self, fn: Validator) -> None:
        """``fn(entries_written, candidate_snapshot) -> [Problem | str]`` (may be async),
        run on every changeset after the schema and reference checks pass."""
        self._validators.append(fn)

    def add_write_guard(self, fn: WriteGuard) -> None:
        """``async fn(actor, changes)`` run before a valid changeset is written; it
        refuses by raising (``PermissionDenied``), and nothing is applied."""
        self._guards.append(fn)

    def subscribe(self, callback: Callable[[int, list[str]], Any], *, pattern: str | None = None) -> Subscriber:
        """Call ``callback(version, changed_ids)`` after each change is live (only
        for ids matching the glob ``pattern`` when given). Returns a handle; call it
        (or ``.cancel()``) to unsubscribe."""
        return self._subs.add(callback, pattern=pattern)

    def subscribe_pid(self, node: Any, pid: str, *, pattern: str | None = None) -> Subscriber:
        """Send ``("registry.changed", {"version", "changed"})`` to a process after each change."""
        return self._subs.add_pid(node, pid, pattern=pattern)

    # -- writing ---------------------------------------------------------------
    def changeset(self, *, author: str | None = None, reason: str = "", actor: Any = None) -> Changeset:
        """A changeset based on the live version (applying it after another change raises ``StaleVersion``)."""
        return Changeset(base_version=self.version, author=author or self.author_default, reason=reason, actor=actor)

    async def validate(self, cs: Changeset) -> list[Problem]:
        """Every problem applying ``cs`` now would meet (nothing is applied)."""
        base = self._live
        changes, problems = resolve(cs, base)
        if problems or not changes:
            return problems
        return await validate_state(changes, _next(base, changes), validators=self._validators)

    async def apply(self, cs: Changeset) -> int:
        """Validate ``cs`` as a whole, check write guards, store it as one new version
        and make it live; returns the new version (the live one if nothing changed).

        Raises ``StaleVersion`` (based on an old version, or another node wrote
        first), ``ValidationError`` (every problem in ``details["problems"]``),
        whatever a write guard raises (``PermissionDenied``), ``StoreError``.
        Nothing is applied when it raises.
        """
        for _ in range(_RETRIES):
            try:
                return await self._apply_once(cs)
            except _Moved:
                continue  # a local change landed while checking: check again on the new base
            except _LostRace:
                await self.refresh()
                if cs.base_version is not None:
                    raise StaleVersion(
                        f"changeset based on version {cs.base_version} is stale: another node wrote version "
                        f"{self.version}; prepare it again",
                        base_version=cs.base_version,
                        head=self.version,
                    ) from None
        raise StaleVersion(f"gave up after {_RETRIES} races with other writers", head=self.version)

    async def _apply_once(self, cs: Changeset) -> int:
        # Validation and guards run outside the lock (a guard may wait for a
        # person's approval); the lock only covers "still the same base?" + write.
        base = self._live
        if cs.base_version is not None and cs.base_version != base.version:
            raise StaleVersion(
                f"changeset based on version {cs.base_version} is stale: the registry is at version "
                f"{base.version}; prepare it again",
                base_version=cs.base_version,
                head=base.version,
            )
        changes, problems = resolve(cs, base)
        if problems:
            raise problems_error(ValidationError, problems)
        if not changes:
            return base.version
        new = _next(base, changes)
        problems = await validate_state(changes, new, validators=self._validators)
        if problems:
            raise problems_error(ValidationError, problems)
        for guard in self._guards:
            await guard(cs.actor if cs.actor is not None else cs.author, changes)
        async with self._lock:
            if self._live is not base:
                if cs.base_version is not None:
                    raise StaleVersion(
                        f"changeset based on version {cs.base_version} is stale: version {self.version} was "
                        "applied while it was being checked; prepare it again",
                        base_version=cs.base_version,
                        head=self.version,
                    )
                raise _Moved()
            await self._append(new_record(new.version, cs.author, cs.reason, changes), changes, cs.origin)
            self._publish(new, [str(c.id) for c in changes])
        log.info(
            "registry version %d: %s",
            new.version,
            ", ".join(f"{c.op} {c.id}" for c in changes),
            extra={"author": cs.author, "reason": cs.reason},
        )
        return new.version

    async def _append(self, record: VersionRecord, changes: Sequence[Change], origin: str, *,
                      runtime_ids: set[str] | None = None) -> None:
        record = replace(record, node=self.node, host=self.host)
        upserts, deletes = persistence(changes, origin)  # type: ignore[arg-type]
        if runtime_ids is not None:
            deletes = [key for key in deletes if key in runtime_ids]
        details = {op: {"version": record.version, "op": op, "reason": record.reason} for op in ("create", "update", "delete")}
        audit = [
            AuditRecord(
                at=record.created_at,
                actor=record.author,
                action="registry.write",
                resource=str(c.id),
                decision="allow",
                details=details[c.op],  # shared by the rows of one op (read-only), encoded once
            )
            for c in changes
        ]
        try:
            await self._store.registry_append(record, runtime_upserts=upserts, runtime_deletes=deletes, audit=audit)
        except StaleVersion:
            raise _LostRace() from None

    def _publish(self, new: Snapshot, changed: list[str]) -> None:
        self._live = new  # one reference swap: readers see the old or the new version, whole
        self._subs.publish(new.version, changed)

    async def rollback(self, version: int, *, author: str | None = None, reason: str | None = None, actor: Any = None) -> int:
        """Restore the entries as they were at ``version``, as one new version.

        Raises ``VersionNotFound`` for a version that was never written, and
        whatever ``apply`` raises.
        """
        head = self.version
        if not isinstance(version, int) or isinstance(version, bool) or version < 1 or version > head or (
            await self._store.registry_get_version(version)
        ) is None:
            raise VersionNotFound(
                f"registry version {version!r} does not exist; versions are 1..{head} (see wippy registry history)",
                version=version,
            )
        target = await self._state_at(version)
        cs = Changeset(
            base_version=head,
            author=author or self.author_default,
            reason=reason or f"rollback to version {version}",
            actor=actor,
        )
        live = self._live
        for key, entry in sorted(target.items()):  # only the ids later versions touched
            current = live.get(key)
            if entry is None:
                if current is not None and current.origin != "builtin":
                    cs.delete(key)
            elif not entry.same_content(current):
                cs.put(entry.evolve(origin="runtime"))
        return await self.apply(cs)

    async def _state_at(self, version: int) -> dict[str, Entry | None]:
        """The entries at ``version`` of every id a later version touched (None: absent
        then): the later versions undone from the live state, newest first — the cost
        is the distance, not the length of the history or the size of the registry."""
        live = self._live
        later = await self._store.registry_history(limit=live.version - version) if live.version > version else []
        state: dict[str, Entry | None] = {}
        for record in sorted(later, key=lambda r: -r.version):
            if record.version <= version:
                break
            for change in reversed(record.changes):
                before = change.get("before")
                state[change["id"]] = Entry.from_record(before) if before is not None else None
        return state

    async def history(self, *, limit: int | None = None) -> list[VersionRecord]:
        """Stored versions, newest first."""
        return await self._store.registry_history(limit=limit)

    # -- loading -----------------------------------------------------------------
    async def load(self, settings: AppSettings, *, persist: bool = True, publish: bool = True,
                   author: str = "loader") -> int:
        """Load the app's files plus the run-time entries from the store, as one version.

        The state is compared with the stored head; what differs (files edited
        while no node ran) is written as one new version. With ``persist=False``
        nothing is written (``unsaved_changes`` counts the difference). With
        ``publish=False`` (SPEC §3: on a shared store only a deploy publishes)
        the store's head is what goes live, and a warning names how many
        entries the local files would change (``unsaved_changes``).
        Only files whose content changed since the last load are parsed (the
        store keeps a parse cache); when none did, the stored current state is
        used as it is. Raises ``LoadError`` / ``ValidationError`` listing every
        problem; the live snapshot is then unchanged.
        """
        with gc_paused():  # a load builds many long-lived values (see gc_paused)
            return await self._load(settings, persist=persist, publish=publish, author=author)

    async def _load(self, settings: AppSettings, *, persist: bool, publish: bool, author: str) -> int:
        cache_of = getattr(self._store, "registry_file_cache", None)
        cache = await cache_of() if cache_of is not None else {}
        read = await asyncio.to_thread(read_sources, settings, cache)
        problems = [p for f in read.files for p in f.problems]
        if problems:  # report all of them, as lint would: the other files' validation problems too
            raise problems_error(LoadError, problems + await self._problems_besides(read))
        put = getattr(self._store, "registry_file_cache_put", None)
        if read.unchanged and read.confirmed_at is not None:
            version = await self._load_unchanged(read, persist=persist)
            if version is not None:
                if put is not None and version != read.confirmed_at:  # the next start checks only what follows
                    await put([(MARKER, str(version), "[]")], [])
                self._loaded(settings, read)
                return version
        entries = [e for f in read.files for e in f.all_entries()]
        dup = _duplicates(entries)
        if dup:
            raise problems_error(LoadError, dup)
        version = await self.load_entries(entries, persist=persist, publish=publish, author=author)
        if put is not None and publish:
            rows = [(f.path, f.key, encode_entries(f.entries or [])) for f in read.parsed()]
            if not self.unsaved_changes:  # the stored state at `version` is what the files say
                rows.append((MARKER, str(version), "[]"))
            await put(rows, read.gone)
        self._loaded(settings, read)
        return version

    async def _problems_besides(self, read: Any) -> list[Problem]:
        """Validation problems of the entries that did parse (a load refused for a bad file
        still names every problem at once)."""
        entries = [e for f in read.files for e in (f.entries if f.entries is not None else f.all_entries())]
        state = {**{str(e.id): e for e in entries}, **self._builtins}
        changes = [Change(op="create", id=e.id, entry=e, before=None) for e in entries]
        found = await validate_state(changes, Snapshot(0, state), validators=self._validators, full=True,
                                     always_run_validators=True)
        return sorted(found, key=lambda p: (p.file or "", p.line or 0, p.entry or "", p.message))

    def _loaded(self, settings: AppSettings, read: Any) -> None:
        self.settings = settings
        self._file_reads = read.files
        self._file_entries = None

    @property
    def file_entries(self) -> dict[str, Entry]:
        """The entries as last read from the files (the watcher's reference), by id."""
        if self._file_entries is None:
            self._file_entries = {str(e.id): e for f in self._file_reads for e in f.all_entries()}
        return self._file_entries

    @file_entries.setter
    def file_entries(self, value: dict[str, Entry]) -> None:
        self._file_entries = value

    async def _load_unchanged(self, read: Any, *, persist: bool) -> int | None:
        """No file changed since the cache was confirmed: the stored current state
        is the registry, unless a version since then was made from files (None)."""
        async with self._lock:
            current = await self._stored_state(reset=persist)
            head, stored = current
            if read.confirmed_at > head:
                return None
            since = await self._store.registry_history(limit=head - read.confirmed_at) if head > read.confirmed_at else []
            if file_made(since) or any(file_saved_since(r) for r in await self._store.runtime_entries()):
                return None
            self.unsaved_changes = 0
            self._publish(Snapshot(head, {**stored, **self._builtins}), [])
            return head

    async def _stored_state(self, *, reset: bool = True) -> tuple[int, dict[str, Entry]]:
        """The store's head and the entries at it: the kept current state, or (a
        store written before it was kept) one replay of the history, kept from then on."""
        current_of = getattr(self._store, "registry_current", None)
        got = await current_of() if current_of is not None else None
        if got is not None:
            head, records = got
            return head, {r["id"]: Entry.from_record(r, copy=False) for r in records}  # decoded just now
        head = await self._store.registry_head()
        state = await state_at(self._store, head)
        reset_to = getattr(self._store, "registry_current_reset", None)
        if reset and reset_to is not None:
            await reset_to(head, [e.to_record() for e in state.values()])
        return head, state

    async def load_entries(self, entries: Iterable[Entry], *, persist: bool = True, publish: bool = True,
                           author: str = "loader") -> int:
        """``load`` from entries already read (tests, embedders)."""
        entries = list(entries)
        for _ in range(_RETRIES):
            try:
                return await self._load_once(entries, persist=persist, publish=publish, author=author)
            except _LostRace:
                continue  # another node wrote meanwhile: compare with the new head
        raise StaleVersion(f"gave up loading after {_RETRIES} races with other writers")

    async def _load_once(self, entries: list[Entry], *, persist: bool, author: str, publish: bool = True) -> int:
        async with self._lock:
            head, stored = await self._stored_state(reset=persist)
            runtime = await self._store.runtime_entries()
            desired = overlay(entries, runtime)
            clash = [Problem.about(desired[k], "is built in and cannot be defined by a file") for k in desired if k in self._builtins]
            if clash:
                raise problems_error(ValidationError, clash)
            cs = Changeset(base_version=head, author=author, reason="load app files", origin="file")
            for key in stored:
                if key not in desired:
                    cs.discard(key)
            for entry in desired.values():
                cs.put(entry)
            base = Snapshot(head, {**stored, **self._builtins})
            changes, problems = resolve(cs, base)
            if not publish:
                self.unsaved_changes = len(changes)
                if changes:
                    log.warning("local files differ from the store's registry version %d in %d entr%s (%s); this "
                                "command runs on the store's version; `wippy registry push` (or `wippy run`) "
                                "publishes them", head, len(changes), "y" if len(changes) == 1 else "ies",
                                ", ".join(sorted(str(c.id) for c in changes)[:5]) + (" ..." if len(changes) > 5 else ""))
                self._publish(base, [])
                return head
            new = Snapshot(head + (1 if changes and persist else 0), {**desired, **self._builtins})
            # a stored state was valid when written: only what changed needs checking
            problems += await validate_state(changes, new, validators=self._validators, full=head == 0 or not stored)
            if problems:
                raise problems_error(ValidationError, problems)
            self.unsaved_changes = 0 if persist else len(changes)
            if changes and persist:
                # run-time rows to drop: only those that exist (read under this lock; a writer in
                # between makes a version, and this append then loses the race and retries)
                await self._append(new_record(new.version, author, f"load app files: {len(changes)} changed", changes),
                                   changes, "file", runtime_ids={r["id"] for r in runtime})
            self._publish(new, [str(c.id) for c in changes])
            self._file_reads = []
            self._file_entries = {str(e.id): e for e in entries}
            return new.version

    async def refresh(self) -> int:
        """Catch up with versions other nodes wrote to the shared store; returns the live version."""
        async with self._lock:
            live = self._live
            head = await self._store.registry_head()
            if head <= live.version:
                return live.version
            state = dict(live._entries)
            changed: dict[str, None] = {}
            remote: list[VersionRecord] = []
            for version in range(live.version + 1, head + 1):
                record = await self._store.registry_get_version(version)
                if record is None:
                    raise StoreError(f"registry version {version} is missing from the store (head is {head})")
                remote.append(record)
                changes = [Change.from_record(c) for c in record.changes]
                apply_changes(state, changes)
                changed.update((str(c.id), None) for c in changes)
            state.update(self._builtins)
            self._publish(Snapshot(head, state), list(changed))
            for record in remote:
                log.info("registry version %d from node %s on %s (%s): %s", record.version, record.node or "?",
                         record.host or "?", record.author, record.reason or f"{len(record.changes)} change(s)")
            log.debug("registry caught up", extra={"version": head, "changed": len(changed)})
            return head

    # -- background work -----------------------------------------------------------
    def follow(self, *, poll_interval: float = 0.25) -> asyncio.Task:
        """Follow versions other nodes write (LISTEN/NOTIFY on PostgreSQL, polling on
        SQLite) until ``close``."""
        return self._spawn(self._follow(poll_interval), "registry-follow")

    async def _follow(self, poll_interval: float) -> None:
        while True:
            try:
                await self.refresh()
                async for _head in _changes(self._store, poll_interval, self.version):
                    await self.refresh()
                return  # the store closed
            except StoreError as exc:
                log.warning("registry follow failed; retrying", extra={"error": str(exc)})
                await asyncio.sleep(poll_interval)

    def watch(self, settings: AppSettings | None = None, *, on_error: Callable[[Exception], Any] | None = None,
              debounce_ms: int = 30, step_ms: int = 5) -> Any:
        """Hot reload: turn saved source files into changesets until ``close``.

        Returns the started ``FileWatcher``. A bad file changes nothing; its error
        is logged and passed to ``on_error``.
        """
        from .watcher import FileWatcher

        settings = settings or self.settings
        if settings is None:
            raise ValidationError("watch() needs the app settings (call load(settings) first)")
        watcher = FileWatcher(self, settings, on_error=on_error, debounce_ms=debounce_ms, step_ms=step_ms)
        watcher.start()
        self._closers.append(watcher.aclose)
        return watcher

    def _spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Stop following, watching and delivering; the store stays open (its owner closes it)."""
        for closer in self._closers:
            await closer()
        self._closers.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        await self._subs.aclose()

    async def __aenter__(self) -> "Registry":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _LostRace(Exception):
    """Internal: the store refused our version because another writer got there first."""


class _Moved(Exception):
    """Internal: the live version moved while a base_version=None changeset was checked."""


def _changes(store: Any, poll_interval: float, since: int) -> Any:
    """``store.registry_changes`` from ``since`` when the backend takes it (no gap after load)."""
    try:
        accepts_since = "since" in inspect.signature(store.registry_changes).parameters
    except (TypeError, ValueError):
        accepts_since = False
    if accepts_since:
        return store.registry_changes(poll_interval=poll_interval, since=since)
    return store.registry_changes(poll_interval=poll_interval)


def _duplicates(entries: list[Entry]) -> list[Problem]:
    seen: dict[str, Entry] = {}
    out = []
    for entry in entries:
        first = seen.setdefault(str(entry.id), entry)
        if first is not entry:
            out.append(Problem.about(entry, f"duplicate id, also defined at {first.where()}"))
    return out


def _next(base: Snapshot, changes: Sequence[Change]) -> Snapshot:
    new = base.derive(base.version + 1, ((str(c.id), c.entry) for c in changes))
    derive_index(base, new, changes)
    return new
