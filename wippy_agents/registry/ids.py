"""Entry ids: ``namespace:name`` with dotted namespaces (``app.tools:weather``).

``EntryId`` subclasses ``str`` on purpose: snapshots are plain dicts keyed by
id, and a ``str`` key makes ``snapshot.get("app.tools:weather")`` a single dict
lookup whether the caller holds an ``EntryId`` or a string; ids also cross into
JSON, the store and Lua unchanged.
"""

from __future__ import annotations

import fnmatch
import re

from ..errors import ValidationError

__all__ = ["EntryId", "is_pattern", "id_matches", "NAMESPACE_RE", "NAME_RE"]

_SEGMENT = r"[A-Za-z_][A-Za-z0-9_\-]*"
NAMESPACE_RE = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})*")
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_.\-]+)*")
_PATTERN_CHARS = frozenset("*?[")


def _whole_id_re() -> "re.Pattern[str]":
    return re.compile(f"(?:{NAMESPACE_RE.pattern}):(?:{NAME_RE.pattern})")


class EntryId(str):
    """An entry id ``namespace:name``; a ``str`` with ``.namespace`` and ``.name``.

    >>> EntryId.parse("weather", namespace="app.tools")
    'app.tools:weather'

    Raises ``ValidationError`` (a ``RegistryError``) for a malformed id.
    """

    __slots__ = ()

    def __new__(cls, text: str) -> "EntryId":
        if isinstance(text, EntryId):
            return text
        if isinstance(text, str) and _ID_RE.fullmatch(text):  # one match; parse() words what is wrong
            return str.__new__(cls, text)
        return cls.parse(text)

    @classmethod
    def parse(cls, text: object, *, namespace: str | None = None) -> "EntryId":
        """Parse ``ns:name``, or a bare ``name`` in ``namespace`` (the referring entry's).

        Raises ``ValidationError`` saying which part is wrong.
        """
        if isinstance(text, EntryId):
            return text
        if not isinstance(text, str) or not text:
            raise ValidationError(f"invalid entry id {text!r}: expected a string 'namespace:name'", id=repr(text))
        ns, sep, name = text.rpartition(":")
        if not sep:
            if namespace is None:
                raise ValidationError(
                    f"invalid entry id {text!r}: a bare name needs a namespace; write 'namespace:{text}'", id=text
                )
            ns = namespace
        if not NAMESPACE_RE.fullmatch(ns):
            raise ValidationError(
                f"invalid entry id {text!r}: namespace {ns!r} must be dotted identifiers like 'app.tools'", id=text
            )
        if not NAME_RE.fullmatch(name):
            raise ValidationError(
                f"invalid entry id {text!r}: name {name!r} must start with a letter or '_' and hold only "
                "letters, digits, '_', '-', '.' (and '/' between parts, as in an MCP tool's 'server/tool')",
                id=text,
            )
        return str.__new__(cls, f"{ns}:{name}")

    @classmethod
    def of(cls, namespace: str, name: str) -> "EntryId":
        """Build an id from its parts (validated)."""
        return cls(f"{namespace}:{name}")

    @property
    def namespace(self) -> str:
        return self.rpartition(":")[0]

    @property
    def name(self) -> str:
        return self.rpartition(":")[2]

    def __repr__(self) -> str:
        return str.__repr__(str(self))


def is_pattern(text: str) -> bool:
    """True for a glob such as ``app.tools:*`` (a reference to many entries)."""
    return any(c in _PATTERN_CHARS for c in text)


def id_matches(entry_id: str, pattern: str) -> bool:
    """Glob match of an id, case-sensitive (``app.tools:*`` matches ``app.tools:weather``)."""
    return fnmatch.fnmatchcase(entry_id, pattern)


def resolve_ref(text: str, *, namespace: str) -> str:
    """Resolve a reference: a full id, a bare name in ``namespace``, or a glob.

    Globs keep their shape but get the namespace when bare (``*`` -> ``ns:*``).
    Raises ``ValidationError`` for a malformed id.
    """
    if isinstance(text, str) and is_pattern(text):
        return text if ":" in text else f"{namespace}:{text}"
    return EntryId.parse(text, namespace=namespace)


__all__.append("resolve_ref")


_ID_RE = _whole_id_re()
