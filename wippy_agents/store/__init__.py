"""The durable store: one ``Store`` Protocol, SQLite and PostgreSQL backends.

>>> store = await open_store("sqlite:///.wippy/state.db")
>>> head = await store.registry_head()
>>> await store.close()
"""

from .base import AuditRecord, NodeRecord, StepRecord, StepStatus, Store, TaskRecord, TaskStatus, VersionRecord
from .factory import open_store

__all__ = [
    "open_store",
    "Store",
    "VersionRecord",
    "AuditRecord",
    "TaskRecord",
    "StepRecord",
    "NodeRecord",
    "TaskStatus",
    "StepStatus",
]
