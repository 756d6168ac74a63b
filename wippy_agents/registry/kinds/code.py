"""Lua code kinds: ``function.lua``, ``library.lua``, ``process.lua``, ``workflow.lua``.

Whether the Lua compiles is not checked here (the registry must not import
the Lua layer): the app wiring registers ``lua.compile_check`` as a registry
validator for entries of these kinds.
"""

from __future__ import annotations

from .base import KindHandler, RefField

__all__ = ["FunctionLua", "LibraryLua", "ProcessLua", "WorkflowLua"]

_IMPORTS = RefField(path="imports.*", kinds=("library.lua",))
# policies: narrow what the code may do (the security layer reads them when the code runs)
_POLICIES = RefField(path="policies[]", kinds=("security.policy",))


class FunctionLua(KindHandler):
    kind = "function.lua"
    schema_file = "function.lua.json"
    description = "A Lua function run in a fresh sandbox per call; with meta.type tool, a tool agents can call."
    refs = (_IMPORTS, _POLICIES)
    code_fields = ("source",)
    schema_fields = ("input_schema", "output_schema")
    call_mode = "lua"
    tool_capable = True
    runs_as_creator = True


class LibraryLua(KindHandler):
    kind = "library.lua"
    schema_file = "library.lua.json"
    description = "A Lua module other Lua entries import through imports: {alias: ns:name}."
    refs = (_IMPORTS, _POLICIES)
    code_fields = ("source",)
    runs_as_creator = True


class ProcessLua(KindHandler):
    kind = "process.lua"
    schema_file = "process.lua.json"
    description = "A Lua process: a pid, a mailbox, spawned on a process.host."
    refs = (_IMPORTS, _POLICIES)
    code_fields = ("source",)
    runs_as_creator = True


class WorkflowLua(KindHandler):
    kind = "workflow.lua"
    schema_file = "workflow.lua.json"
    description = "A durable Lua function on the task journal (time.sleep survives restarts)."
    refs = (_IMPORTS, _POLICIES)
    code_fields = ("source",)
    call_mode = "workflow"
    runs_as_creator = True

