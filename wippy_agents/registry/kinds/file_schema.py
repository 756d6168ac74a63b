"""The JSON Schema of a whole entry file, for editors (SPEC §3).

Each YAML document of an entry file is ``{version?, namespace, entries}``;
every entry is validated by the schema of its ``kind`` through ``if``/``then``
on ``kind``, and every kind but ``registry.entry`` is closed (a field it does
not define is an error), so an editor reports what ``wippy lint`` reports.
VS Code's YAML extension reads it from a first line such as
``# yaml-language-server: $schema=../schemas/entry-file.json``.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..ids import NAMESPACE_RE
from .base import KindHandler

__all__ = ["file_schema", "FILE_SCHEMA_ID"]

FILE_SCHEMA_ID = "https://wippy.ai/schemas/entry-file.json"


def file_schema(handlers: Iterable[KindHandler]) -> dict[str, Any]:
    """The entry-file schema over these kind handlers (sorted by kind)."""
    handlers = sorted(handlers, key=lambda h: h.kind)
    defs: dict[str, Any] = {}
    branches = []
    for handler in handlers:
        kind_schema = {k: v for k, v in handler.schema.items() if k not in ("$schema", "$id")}
        defs[handler.kind] = kind_schema
        branches.append({
            "if": {"properties": {"kind": {"const": handler.kind}}, "required": ["kind"]},
            "then": {"$ref": f"#/$defs/{_pointer(handler.kind)}"},
        })
    defs["entry"] = {
        "type": "object",
        "description": "one registry entry: name, kind, meta and the fields of its kind",
        "required": ["name", "kind"],
        "properties": {
            "name": {"type": "string", "description": "entry name; the id is namespace:name"},
            "kind": {"enum": [h.kind for h in handlers], "description": "what the entry is (wippy registry schema)"},
        },
        "allOf": branches,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": FILE_SCHEMA_ID,
        "title": "wippy entry file",
        "description": "One YAML document of a wippy entry file (agents/, tools/, prompts/ ...).",
        "type": "object",
        "properties": {
            "version": {"const": "1.0", "description": "the entry file format version"},
            "namespace": {"type": "string", "pattern": f"^{NAMESPACE_RE.pattern}$",
                          "description": "dotted identifiers, e.g. app.tools"},
            "entries": {"type": "array", "items": {"$ref": "#/$defs/entry"}},
            "wippy": {"type": "object", "description": "settings of a single-file app (only in the app file)"},
        },
        "anyOf": [{"required": ["namespace"]}, {"required": ["wippy"]}],
        "additionalProperties": False,
        "$defs": defs,
    }


def _pointer(kind: str) -> str:
    return kind.replace("~", "~0").replace("/", "~1")
