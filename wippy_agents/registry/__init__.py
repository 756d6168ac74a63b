"""The versioned, transactional, hot-reloading registry (SPEC §3).

Every component is an entry ``{id, kind, meta, data}``. Files under the app's
sources are loaded; changes arrive as changesets (validated as a whole,
applied atomically as one stored version); subscribers hear
``registry.changed`` after a change is live. File and run-time entries: a
run-time change wins until a person saves the file again (see ``history``).
"""

from . import kinds
from .changeset import Change, Changeset
from .entry import Entry, Problem
from .ids import EntryId
from .lint import lint
from .loader import LoadResult, load_file, load_sources
from .notify import TOPIC as CHANGED_TOPIC
from .notify import Subscriber
from .registry import Registry, WriteGuard
from .settings import AppSettings
from .snapshot import Snapshot
from .validation import Validator, code_validator
from .watcher import FileWatcher

__all__ = [
    "AppSettings",
    "CHANGED_TOPIC",
    "Change",
    "Changeset",
    "Entry",
    "EntryId",
    "FileWatcher",
    "LoadResult",
    "Problem",
    "Registry",
    "Snapshot",
    "Subscriber",
    "Validator",
    "code_validator",
    "WriteGuard",
    "kinds",
    "load_file",
    "load_sources",
    "lint",
]
