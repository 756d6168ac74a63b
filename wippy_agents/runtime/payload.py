"""Copy message payloads as data, so no two processes ever share a mutable object.

``copy_payload`` is a type-dispatched deep copy for JSON-like data, several
times faster than ``copy.deepcopy`` because it never consults ``__deepcopy__``
or a memo. Immutable scalars (str, int, float, bool, None, bytes) and
exceptions (exit reasons) are shared, not copied. Frozen dataclasses are
rebuilt field by field, and shared as-is when every field is already shared
(so ``Exit``/``Down``/``Message`` pass through without allocation).

Anything else — a socket, a lambda, a set, an arbitrary object — raises
``InvalidPayload`` at send time, naming the type and where it sits:
``cannot send socket at payload['conn'][0]: ...``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from wippy_agents.errors import InvalidPayload

__all__ = ["copy_payload", "SHARED"]

# Immutable scalars: passed by reference, never copied (callers test `type(v) in SHARED` to skip the call).
SHARED = _SHARED = frozenset({str, int, float, bool, type(None), bytes})
_ALLOWED = "dict, list, tuple, str, int, float, bool, None, bytes or a frozen dataclass of those"


class _Bad(Exception):
    """Internal: carries the offending value and its path outward while unwinding."""

    def __init__(self, value: Any, problem: str) -> None:
        self.value = value
        self.problem = problem
        self.path: list[str] = []


def copy_payload(value: Any, where: str = "payload") -> Any:
    """Return a deep copy of ``value`` that shares nothing mutable with it.

    Never blocks. Raises ``InvalidPayload`` when ``value`` holds something that
    is not data; the message names the type and its path under ``where``.
    """
    if type(value) in _SHARED:
        return value
    try:
        return _copy(value)
    except _Bad as bad:
        path = where + "".join(reversed(bad.path))
        raise InvalidPayload(
            f"cannot send {_describe(bad.value)} at {path}: {bad.problem}", path=path
        ) from None
    except RecursionError:
        raise InvalidPayload(f"cannot send {where}: it is nested too deeply or refers to itself", path=where) from None


def _copy(value: Any) -> Any:
    t = type(value)
    if t in _SHARED:
        return value
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) not in _SHARED:
                bad = _Bad(k, f"dict keys must be str, int, float, bool, None or bytes, not {_describe(k)}")
                bad.path.append("[<key>]")
                raise bad
            try:
                out[k] = v if type(v) in _SHARED else _copy(v)
            except _Bad as bad:
                bad.path.append(f"[{k!r}]")
                raise
        return out
    if t is list or t is tuple:
        items = []
        for i, v in enumerate(value):
            try:
                items.append(v if type(v) in _SHARED else _copy(v))
            except _Bad as bad:
                bad.path.append(f"[{i}]")
                raise
        return items if t is list else tuple(items)
    return _copy_other(value, t)


def _copy_other(value: Any, t: type) -> Any:
    """The slow path: subclasses, frozen dataclasses, exceptions, refusals."""
    if isinstance(value, BaseException):
        return value  # exit reasons: treated as immutable error values
    if isinstance(value, (str, int, float, bytes)):  # IntEnum, StrEnum, ... are immutable
        return value
    if isinstance(value, dict):
        return _copy(dict(value))
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return _copy(list(value)) if isinstance(value, list) else _copy(tuple(value))
    params = getattr(t, "__dataclass_params__", None)
    if params is not None and not isinstance(value, type):
        if not params.frozen:
            raise _Bad(value, "a dataclass must be frozen to be sent (or send dataclasses.asdict(obj))")
        return _copy_dataclass(value, t)
    if hasattr(value, "_fields"):
        raise _Bad(value, "named tuples are not sent; send a dict or a frozen dataclass")
    raise _Bad(value, f"payloads must be copyable data ({_ALLOWED})")


def _copy_dataclass(value: Any, t: type) -> Any:
    changed = {}
    for f in dataclasses.fields(value):
        v = getattr(value, f.name)
        try:
            c = v if type(v) in _SHARED else _copy(v)
        except _Bad as bad:
            bad.path.append(f".{f.name}")
            raise
        if c is not v:
            changed[f.name] = c
    if not changed:
        return value  # every field is immutable already: share the instance
    clone = object.__new__(t)
    for f in dataclasses.fields(value):
        object.__setattr__(clone, f.name, changed.get(f.name, getattr(value, f.name)))
    return clone


def _describe(value: Any) -> str:
    t = type(value)
    name = t.__qualname__ if t.__module__ in ("builtins", None) else f"{t.__module__}.{t.__qualname__}"
    if callable(value) and getattr(value, "__name__", None) == "<lambda>":
        return f"{name} (a lambda)"
    return name
