"""``NodeLayers``: the layers below the agents layer that it is handed (by ``App``) — typed, all required.

The agents layer never imports ``app.py``; the composition root hands it an
object with these attributes (an ``App`` is one). Security is not optional:
a tool call, a self-modification tool or an agent start always meets its
checks.
"""

from __future__ import annotations

from typing import Protocol

from ..lua import LuaHost
from ..registry import Registry
from ..runtime import Node
from ..security import Security
from ..store import Store
from ..tasks import TaskEngine

__all__ = ["NodeLayers"]


class NodeLayers(Protocol):
    node: Node
    store: Store
    registry: Registry
    security: Security
    lua: LuaHost
    tasks: TaskEngine
