"""``function.python``: a function written in Python and shipped with the package.

These entries are *builtin*: code registers them (``wippy_agents.agents.python_tool``)
and the app hands them to ``Registry(builtins=...)``. A file or a run-time
changeset can never create one — the entry would name Python code to run,
which would let anyone who can write the registry run arbitrary Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from ..entry import Entry, Problem
from .base import KindHandler

if TYPE_CHECKING:
    from ..snapshot import Snapshot

__all__ = ["FunctionPython"]


class FunctionPython(KindHandler):
    kind = "function.python"
    schema_file = "function.python.json"
    description = "A Python function shipped with the package (builtin only); with meta.type tool, an agent tool."
    call_mode = "python"
    tool_capable = True

    def check(self, entry: Entry, snapshot: "Snapshot") -> Iterable[Problem]:
        if entry.origin != "builtin":
            yield Problem.about(
                entry,
                "function.python entries are provided by Python code (python_tool) and cannot be "
                "written in files or created at run time; use function.lua",
                field="kind",
            )
