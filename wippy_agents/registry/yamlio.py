"""YAML reading that keeps line numbers (for ``file:line: entry: message``)."""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["LineDict", "load_documents", "plain", "yaml_error_line", "yaml_error_text"]


class LineDict(dict):
    """A mapping from YAML that remembers its line and the line of each key."""

    line: int = 1
    key_lines: dict[str, int]


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode):
    data = LineDict()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"unhashable mapping key {key!r}", key_node.start_mark
            )
        if key in data:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} in one mapping", key_node.start_mark
            )
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[str(key)] = key_node.start_mark.line + 1


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)


def load_documents(text: str) -> list[Any]:
    """Every non-empty document of ``text``; raises ``yaml.YAMLError``."""
    return [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]


def plain(value: Any) -> Any:
    """Deep copy into plain dicts/lists (drops line bookkeeping)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def yaml_error_line(exc: yaml.YAMLError) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark is not None else 1


def yaml_error_text(exc: yaml.YAMLError) -> str:
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    text = ", ".join(p for p in parts if p)
    return text or str(exc).splitlines()[0]
