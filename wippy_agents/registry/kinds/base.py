"""The kind plug-in seam: a handler (references, contextual checks) plus a JSON Schema.

The registry core asks a handler, never a kind name, what an entry refers to
and what else to check; adding a kind is one ``KindHandler`` subclass and one
schema file, registered in ``kinds/__init__.py`` (or by another layer through
``register_kind``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Iterator

import jsonschema

from ...errors import ValidationError
from ..entry import Entry, Problem
from ..ids import NAME_RE, is_pattern, resolve_ref
from ..suggest import suggest

if TYPE_CHECKING:
    from ..snapshot import Snapshot

RUN_AS_FIELD = "run_as_policies"  # the field security/stamp.py writes

__all__ = ["RefField", "Ref", "KindHandler", "ENTRY_HEADER", "as_written", "unknown_fields"]

# The part of every schema that describes name/kind/meta (merged into each kind's schema).
ENTRY_HEADER: dict[str, Any] = {
    "name": {"type": "string", "pattern": f"^{NAME_RE.pattern}$", "description": "entry name; id is namespace:name"},
    "meta": {
        "type": "object",
        "description": "free-form metadata used by find (meta.type, meta.description, meta.alias ...)",
        "properties": {
            "type": {"type": "string"},
            "description": {"type": "string"},
            "alias": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_\\-]*$"},
        },
    },
}


@dataclass(frozen=True, kw_only=True)
class RefField:
    """Where a kind keeps references to other entries.

    ``path`` walks the entry's data: ``model`` (a field), ``tools[]`` (each list
    item), ``delegates[].id`` (a field of each list item), ``imports.*`` (each
    value of a mapping). ``kinds`` limits the target's kind (empty: any);
    ``wildcard`` allows globs such as ``app.tools:*``; ``inline_text`` means the
    field may hold text instead: only a full ``namespace:name`` without spaces
    is a reference there (an agent's ``prompt``; a bare word is text).
    """

    path: str
    kinds: tuple[str, ...] = ()
    wildcard: bool = False
    inline_text: bool = False


@dataclass(frozen=True, kw_only=True)
class Ref:
    """One reference found in an entry: ``target`` is a resolved id or a glob."""

    field: str  # the top-level field it sits in (for the line number)
    label: str  # e.g. "delegates[0].id"
    target: str
    spec: RefField

    @property
    def is_pattern(self) -> bool:
        return is_pattern(self.target)


class KindHandler:
    """One kind: its schema file and what its entries refer to.

    Subclasses set ``kind``, ``schema_file`` (in ``kinds/schemas/``), ``refs``,
    ``code_fields`` (Lua source fields), the traits ``call_mode``, ``tool_capable`` and
    ``runs_as_creator``, a one-line ``description``, and may override ``check`` for rules that need
    the whole snapshot (e.g. an agent's tool names).
    """

    kind: ClassVar[str]
    schema_file: ClassVar[str]
    description: ClassVar[str] = ""
    refs: ClassVar[tuple[RefField, ...]] = ()
    # fields that hold Lua source text (checked by a registered compile validator)
    code_fields: ClassVar[tuple[str, ...]] = ()
    # free-form kinds (registry.entry) accept any field; every other kind is closed:
    # a field it does not define is an error naming the closest known one
    open_fields: ClassVar[bool] = False
    # fields that hold a JSON Schema (checked against the JSON Schema meta-schema)
    schema_fields: ClassVar[tuple[str, ...]] = ()
    # What other layers need to know about this kind's entries (they ask here, never a list of kind names):
    # how `funcs.call` / `wippy call` runs one ("lua", "python", "workflow", "mcp"; None: not callable),
    call_mode: ClassVar[str | None] = None
    # whether one may be a tool (with meta.type: tool),
    tool_capable: ClassVar[bool] = False
    # whether its code runs narrowed to the policies of whoever wrote it (stamped at write).
    runs_as_creator: ClassVar[bool] = False
    # entries that reach outside the sandbox (start a program, hold its tools): only a person writes them
    owner_only: ClassVar[bool] = False

    @cached_property
    def schema(self) -> dict[str, Any]:
        """The published JSON Schema of one entry of this kind, as written in YAML."""
        text = resources.files(__package__).joinpath("schemas", self.schema_file).read_text("utf-8")
        schema = json.loads(text)
        props = schema.setdefault("properties", {})
        for key, value in ENTRY_HEADER.items():
            props.setdefault(key, value)
        props["kind"] = {"const": self.kind}
        if self.runs_as_creator:  # stamped by the security layer on code an agent writes
            props.setdefault(RUN_AS_FIELD, {"description": "set by the platform: the policies this code runs under"})
        if not self.open_fields:
            schema.setdefault("additionalProperties", False)
        schema.setdefault("$schema", "https://json-schema.org/draft/2020-12/schema")
        schema.setdefault("$id", f"https://wippy.ai/schemas/{self.kind}.json")
        schema.setdefault("title", self.kind)
        if self.description:
            schema.setdefault("description", self.description)
        schema["required"] = ["name", "kind"] + [k for k in schema.get("required", []) if k not in ("name", "kind")]
        return schema

    @cached_property
    def validator(self) -> jsonschema.protocols.Validator:
        cls = jsonschema.validators.validator_for(self.schema)
        cls.check_schema(self.schema)
        return cls(self.schema)

    @cached_property
    def quick_check(self) -> Any:
        """A compiled validator of the same schema (``fastjsonschema``): a valid
        entry costs microseconds; jsonschema then words the errors of an invalid one."""
        try:
            import fastjsonschema
        except ImportError:  # pragma: no cover - an optional speed-up
            return None
        schema = {k: v for k, v in self.schema.items() if k not in ("$schema", "$id")}
        try:
            conditions = _conditions(schema.get("allOf"))
            if conditions is None:
                return fastjsonschema.compile(schema)
            # ``allOf: [{if, then}]`` with simple ``if``s: tested in Python (fastjsonschema
            # answers an ``if`` that does not hold by raising, ~8 µs an entry)
            whole = fastjsonschema.compile({k: v for k, v in schema.items() if k != "allOf"})
            rules = [(test, fastjsonschema.compile(then)) for test, then in conditions]
        except Exception:  # noqa: BLE001 - a schema it cannot compile is checked by jsonschema alone
            return None

        def check(doc: Any) -> None:
            whole(doc)
            for test, then in rules:
                if test(doc):
                    then(doc)

        return check

    def schema_problems(self, entry: Entry) -> list[Problem]:
        """Validate the entry as written in YAML against the schema."""
        doc = {"name": entry.id.name, "kind": entry.kind, "meta": entry.meta, **as_written(entry.data)}
        out: list[Problem] = []
        for err in self._errors(doc):
            where = ".".join(str(p) for p in err.path)
            if err.validator == "additionalProperties" and isinstance(err.instance, dict):
                for key in unknown_fields(err.instance, err.schema):
                    path = f"{where}.{key}" if where else key
                    near = suggest(key, err.schema.get("properties", {}))
                    out.append(Problem.about(entry, f"unknown field `{path}`{near}", field=str(err.path[0]) if err.path else key))
                continue
            top = str(err.path[0]) if err.path else None
            text = _message(err)
            msg = f"{where}: {text}" if where else text
            out.append(Problem.about(entry, f"{entry.kind} schema: {msg}", field=top))
        for name in self.schema_fields:
            value = entry.data.get(name)
            if isinstance(value, dict):
                problem = meta_schema_problem(value)
                if problem:
                    out.append(Problem.about(entry, f"{name}: not a valid JSON Schema: {problem}", field=name))
        return out

    def _errors(self, doc: dict[str, Any]) -> list[jsonschema.ValidationError]:
        quick = self.quick_check
        if quick is not None:
            try:
                quick(doc)
                return []
            except Exception:  # noqa: BLE001 - invalid (or a case it cannot judge): ask jsonschema
                pass
        return sorted(self.validator.iter_errors(doc), key=lambda e: list(map(str, e.path)))

    def references(self, entry: Entry) -> Iterator[Ref]:
        """Every reference the entry makes (bare names resolved in its namespace).

        Raises ``ValidationError`` for a malformed id in a reference field.
        """
        for spec in self.refs:
            for label, value in _walk(entry.data, spec.path):
                if not isinstance(value, str):
                    continue  # the schema reports the wrong type
                if spec.inline_text and not _looks_like_id(value):
                    continue
                if is_pattern(value) and not spec.wildcard:
                    raise ValidationError(f"{label}: {value!r} is a pattern; this field needs one entry id")
                try:
                    target = resolve_ref(value, namespace=entry.id.namespace)
                except ValidationError as exc:
                    raise ValidationError(f"{label}: {exc}") from None
                yield Ref(field=label.split("[")[0].split(".")[0], label=label, target=target, spec=spec)

    def check(self, entry: Entry, snapshot: "Snapshot") -> Iterable[Problem]:
        """Rules that need the whole (candidate) snapshot; none by default."""
        return ()

    def provides(self, entry: Entry, target: str) -> bool:
        """True when a reference to ``target`` (``<entry id>/...``) is satisfied by ``entry`` itself,
        whether or not an entry of that id exists yet (an MCP server's tools); False by default."""
        return False


_NOTHING = object()


def _conditions(all_of: Any) -> list[tuple[Callable[[Any], bool], dict[str, Any]]] | None:
    """``[(test of if, then schema)]`` when every item of ``all_of`` is ``{if, then}``
    with an ``if`` that ``_if_test`` can judge and no ``$ref`` (None otherwise)."""
    if not isinstance(all_of, list) or not all_of:
        return None
    out = []
    for item in all_of:
        if not isinstance(item, dict) or set(item) != {"if", "then"} or "$ref" in json.dumps(item):
            return None
        test = _if_test(item["if"])
        if test is None:
            return None
        out.append((test, item["then"]))
    return out


def _if_test(schema: Any) -> Callable[[Any], bool] | None:
    """A predicate equal to validating against ``schema``, for the subset entry
    schemas use in ``if``: ``properties``, ``required``, string ``const``/``enum``
    (None for anything else)."""
    if not isinstance(schema, dict) or not set(schema) <= {"properties", "required", "const", "enum"}:
        return None
    const, enum = schema.get("const", _NOTHING), schema.get("enum")
    required = schema.get("required", [])
    if const is not _NOTHING and not isinstance(const, str):
        return None
    if enum is not None and not (isinstance(enum, list) and all(isinstance(e, str) for e in enum)):
        return None
    if not (isinstance(required, list) and all(isinstance(r, str) for r in required)):
        return None
    if not isinstance(schema.get("properties", {}), dict):
        return None
    props: dict[str, Callable[[Any], bool]] = {}
    for key, sub in schema.get("properties", {}).items():
        test = _if_test(sub)
        if test is None:
            return None
        props[key] = test

    def holds(value: Any) -> bool:
        if const is not _NOTHING and not (isinstance(value, str) and value == const):
            return False
        if enum is not None and not (isinstance(value, str) and value in enum):
            return False
        if isinstance(value, dict):  # required/properties say nothing about other types
            if any(r not in value for r in required):
                return False
            return all(p(value[k]) for k, p in props.items() if k in value)
        return True

    return holds


def meta_schema_problem(schema: dict[str, Any]) -> str | None:
    """What is wrong with ``schema`` as a JSON Schema (draft 2020-12 unless ``$schema`` says), or None."""
    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        err = jsonschema.exceptions.best_match(cls(cls.META_SCHEMA).iter_errors(schema))
    except Exception as exc:  # noqa: BLE001 - an odd $schema or a bad regex
        return str(exc).splitlines()[0]
    if err is None:
        return None
    where = ".".join(str(p) for p in err.absolute_path)
    return f"{where}: {_message(err)}" if where else _message(err)


def as_written(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the ``<field>_path`` keys the loader adds for ``file://`` fields."""
    return {k: v for k, v in data.items() if not (k.endswith("_path") and k[: -len("_path")] in data)}


def unknown_fields(instance: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """The keys of ``instance`` a closed ``schema`` does not define."""
    known = schema.get("properties", {})
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    return sorted(str(k) for k in instance if k not in known and not any(p.search(str(k)) for p in patterns))


def _message(err: jsonschema.ValidationError) -> str:
    """jsonschema's message, made readable for anyOf/oneOf over ``required`` sets."""
    options = err.validator_value if err.validator in ("anyOf", "oneOf") else None
    if options and all(isinstance(o, dict) and set(o) == {"required"} for o in options):
        alts = " or ".join(" + ".join(o["required"]) for o in options)
        return f"needs {'exactly one of' if err.validator == 'oneOf' else 'one of'}: {alts}"
    text = err.message
    return text if len(text) <= 200 else text[:197] + "..."


def _looks_like_id(value: str) -> bool:
    return ":" in value and not any(c.isspace() for c in value) and len(value) < 200


def _walk(data: Any, path: str, label: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(label, value)`` for every value at ``path`` (see ``RefField``)."""
    head, dot, rest = path.partition(".")
    if head == "*":
        if isinstance(data, dict):
            for key, value in data.items():
                sub = f"{label}.{key}" if label else str(key)
                yield from (_walk(value, rest, sub) if rest else [(sub, value)])
        return
    listy = head.endswith("[]")
    key = head[:-2] if listy else head
    if not isinstance(data, dict) or key not in data:
        return
    value = data[key]
    base = f"{label}.{key}" if label else key
    if listy:
        if not isinstance(value, list):
            return
        for i, item in enumerate(value):
            sub = f"{base}[{i}]"
            yield from (_walk(item, rest, sub) if rest else [(sub, item)])
    elif rest:
        yield from _walk(value, rest, base)
    else:
        yield base, value
