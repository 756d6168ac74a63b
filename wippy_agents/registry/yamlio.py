"""YAML reading that keeps line numbers (for ``file:line: entry: message``) and
refuses input that could hurt the node (SPEC §3).

Parsing is libyaml's (``yaml.CSafeLoader``) with a Python constructor that
records the line of every mapping and key; without libyaml the pure loader is
used and a warning says so once. Before anything is constructed, the composed
node graph is measured without copying: nesting deeper than ``MAX_DEPTH``,
a recursive alias, or aliases expanding to more than ``MAX_NODES`` nodes
(a "billion laughs" file) is a ``YamlLimitError`` naming the line. Integers
beyond 64 bits and NaN/infinity are refused where they are written.

Merge keys (``<<: *base``) follow YAML: the mapping's own keys override the
merged ones; a key written twice in one mapping is still an error.
"""

from __future__ import annotations

import logging
import math
import operator
import re
from typing import Any

import yaml

__all__ = [
    "LineDict",
    "YamlLimitError",
    "load_documents",
    "plain",
    "yaml_error_line",
    "yaml_error_text",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_FILE_BYTES",
    "LIBYAML",
    "may_alias",
]

log = logging.getLogger(__name__)

MAX_DEPTH = 64  # nested mappings/lists in one document
MAX_NODES = 1_000_000  # nodes of a document with every alias expanded where used
MAX_FILE_BYTES = 8 * 1024 * 1024  # an entry file larger than this is refused unread
_INT_MAX = 2**63

LIBYAML = bool(getattr(yaml, "__with_libyaml__", False))
_warned = False


class LineDict(dict):
    """A mapping from YAML that remembers its line and the line of each key."""

    line: int = 1
    key_lines: dict[str, int]


class YamlLimitError(yaml.YAMLError):
    """Input refused before construction: too deep, recursive, or an alias bomb."""

    def __init__(self, problem: str, line: int) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line


_MERGE_TAG = "tag:yaml.org,2002:merge"
_LINE_DEPTH = 3
_ALIAS = re.compile(r"(?:^|[\s\[{,?:-])\*[^\s\[\]{},]")


def _enter(loader: Any, node: yaml.Node) -> None:
    loader.depth += 1
    if loader.depth > MAX_DEPTH:
        raise YamlLimitError(f"nesting deeper than {MAX_DEPTH} levels", node.start_mark.line + 1)


def _construct_seq(loader: Any, node: yaml.SequenceNode) -> list[Any]:
    _enter(loader, node)
    try:
        return [loader.construct_object(child, deep=True) for child in node.value]
    finally:
        loader.depth -= 1


def _construct_map(loader: Any, node: yaml.MappingNode):
    # Lines are kept for documents and entries (depth < 3: document, entries list);
    # the values inside an entry are plain dicts.
    if loader.depth < _LINE_DEPTH:
        data: Any = LineDict()
        data.line = node.start_mark.line + 1
        data.key_lines = {}
    else:
        data = {}
    yield data
    _enter(loader, node)
    try:
        _fill_map(loader, node, data)
    finally:
        loader.depth -= 1


def _fill_map(loader: Any, node: yaml.MappingNode, data: dict) -> None:
    own = len([k for k, _ in node.value if k.tag != _MERGE_TAG])
    loader.flatten_mapping(node)
    merged = len(node.value) - own  # flatten_mapping puts merged pairs first
    mine: set[Any] = set()
    lines = getattr(data, "key_lines", None)
    for i, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(None, None, f"unhashable mapping key {key!r}", key_node.start_mark)
        if i >= merged:
            if key in mine:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} in one mapping", key_node.start_mark
                )
            mine.add(key)
        data[key] = loader.construct_object(value_node, deep=True)
        if lines is not None:
            lines[str(key)] = key_node.start_mark.line + 1


def _construct_int(loader: Any, node: yaml.ScalarNode) -> int:
    text = str(node.value)
    if len(text) > 40:
        raise yaml.constructor.ConstructorError(None, None, "integer out of range (at most 64 bits)", node.start_mark)
    value = yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)
    if not -_INT_MAX <= value < _INT_MAX:
        raise yaml.constructor.ConstructorError(None, None, "integer out of range (at most 64 bits)", node.start_mark)
    return value


def _construct_float(loader: Any, node: yaml.ScalarNode) -> float:
    value = yaml.constructor.SafeConstructor.construct_yaml_float(loader, node)
    if not math.isfinite(value):
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is not a finite number (NaN and infinity are not allowed)", node.start_mark
        )
    return value


_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_SPECIAL_KEYS = (_MERGE_TAG, "tag:yaml.org,2002:value")
_MEMO_MAX = 8192  # distinct plain scalars whose resolved tag is remembered


def _resolve(loader: Any, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
    """The resolver's tag for a node, remembered per plain scalar (entry files repeat
    their keys, kinds and names); the same answer as ``yaml.resolver.Resolver.resolve``
    (there are no path resolvers on these loaders)."""
    if kind is yaml.ScalarNode:
        if not implicit[0]:
            return _STR
        tag = _MEMO.get(value)
        if tag is None:
            tag = _BASE_RESOLVE(loader, kind, value, implicit)
            if len(_MEMO) < _MEMO_MAX and len(value) <= _MEMO_LEN:
                _MEMO[value] = tag
        return tag
    return _SEQ if kind is yaml.SequenceNode else _MAP


_MEMO: dict[str, str] = {}  # plain scalar -> tag; the same for every loader (they share the resolvers)
_MEMO_LEN = 64


def _loader_class() -> type:
    base = yaml.CSafeLoader if LIBYAML else yaml.SafeLoader

    class _Loader(base):  # type: ignore[misc, valid-type]
        depth = 0  # containers being constructed (bounded by MAX_DEPTH)
        resolve = _resolve
        # no path resolvers: nothing to descend into or ascend from (builtins: the
        # parser calls these for every node, their answer is ignored)
        descend_resolver = staticmethod(operator.is_)
        ascend_resolver = staticmethod(tuple)

    assert not _Loader.yaml_path_resolvers
    # The generic constructors: used for what ``_build`` hands back (explicit tags,
    # timestamps, sets, ...), bounded and line-keeping like ``_build``.
    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)
    _Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
    _Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
    return _Loader


_BASE_RESOLVE = yaml.resolver.BaseResolver.resolve
_Loader = _loader_class()
_BOOLS = yaml.constructor.SafeConstructor.bool_values


def _build(loader: Any, node: yaml.Node, level: int) -> Any:
    """The value of ``node`` (``level``: its nesting, the document's top is 1) without
    the constructor's per-node bookkeeping: a node is built at every use, so an
    alias gives a copy (documents with aliases were measured by ``check_bounds``
    first). Anything but plain maps, lists and core scalars goes to the generic
    constructors (which refuse unknown tags such as ``!!python/object``)."""
    tag = node.tag
    cls = type(node)
    if cls is yaml.ScalarNode:
        if tag == _STR:
            return node.value
        if tag == "tag:yaml.org,2002:int":
            text = node.value
            if text.isascii() and text.isdigit() and len(text) < 19 and (text[0] != "0" or text == "0"):
                return int(text)
            return _construct_int(loader, node)
        if tag == "tag:yaml.org,2002:null":
            return None
        if tag == "tag:yaml.org,2002:bool":
            return _BOOLS[node.value.lower()]
        if tag == "tag:yaml.org,2002:float":
            return _construct_float(loader, node)
    elif cls is yaml.MappingNode and tag == _MAP:
        return _build_map(loader, node, level)
    elif cls is yaml.SequenceNode and tag == _SEQ:
        if level > MAX_DEPTH:
            raise YamlLimitError(f"nesting deeper than {MAX_DEPTH} levels", node.start_mark.line + 1)
        return [_build(loader, child, level + 1) for child in node.value]
    loader.depth = level - 1
    return loader.construct_object(node, deep=True)


def _build_map(loader: Any, node: yaml.MappingNode, level: int) -> dict:
    if level > MAX_DEPTH:
        raise YamlLimitError(f"nesting deeper than {MAX_DEPTH} levels", node.start_mark.line + 1)
    lines: dict[str, int] | None = None
    if level <= _LINE_DEPTH:  # documents and entries keep lines; values inside an entry are plain dicts
        data: Any = LineDict()
        data.line = node.start_mark.line + 1
        data.key_lines = lines = {}
    else:
        data = {}
    for key_node, value_node in node.value:
        if key_node.tag == _STR and type(key_node) is yaml.ScalarNode:
            key = key_node.value
        elif key_node.tag in _SPECIAL_KEYS:
            data.clear()
            if lines is not None:
                lines.clear()
            loader.depth = level
            _fill_map(loader, node, data)  # merge keys: YAML's rules, the constructor's code
            return data
        else:
            key = _build(loader, key_node, level + 1)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise yaml.constructor.ConstructorError(None, None, f"unhashable mapping key {key!r}", key_node.start_mark)
        if key in data:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r} in one mapping", key_node.start_mark)
        data[key] = _build(loader, value_node, level + 1)
        if lines is not None:
            lines[str(key)] = key_node.start_mark.line + 1
    return data


def load_documents(text: str, *, aliases: bool | None = None) -> list[Any]:
    """Every non-empty document of ``text`` (``aliases``: ``may_alias(text)`` if known).

    Raises ``yaml.YAMLError`` (``YamlLimitError`` for input past the bounds);
    a ``RecursionError`` of the pure loader is reported as too deep.
    """
    global _warned
    if not LIBYAML and not _warned:
        _warned = True
        log.warning("libyaml is not available: entry files are parsed by the slower pure-Python YAML loader")
    # Without an alias the node graph is a tree no larger than the text: ``_build``
    # bounds its depth as it goes. An alias token makes us measure the expanded
    # size first.
    maybe_alias = may_alias(text) if aliases is None else aliases
    loader = _Loader(text)
    try:
        docs = []
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if maybe_alias:
                check_bounds(node)
            doc = _build(loader, node, 1)
            loader.constructed_objects = {}
            if doc is not None:
                docs.append(doc)
        return docs
    except RecursionError:
        raise YamlLimitError(f"nesting deeper than {MAX_DEPTH} levels", 1) from None
    finally:
        loader.dispose()


def check_bounds(root: yaml.Node, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> int:
    """The expanded node count of ``root`` (each alias counted at every use),
    measured once per distinct node; raises ``YamlLimitError`` past the bounds."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        nid = id(node)
        children = _children(node)
        if done:
            on_path.discard(nid)
            size = 1 + sum(sizes[id(c)] for c in children)
            if size > max_nodes:
                raise YamlLimitError(
                    f"aliases expand to more than {max_nodes} nodes (a 'billion laughs' file?)", node.start_mark.line + 1
                )
            sizes[nid] = size
            continue
        if nid in sizes:
            continue
        if nid in on_path:
            raise YamlLimitError("recursive alias: an anchor refers to itself", node.start_mark.line + 1)
        if depth > max_depth:
            raise YamlLimitError(f"nesting deeper than {max_depth} levels", node.start_mark.line + 1)
        on_path.add(nid)
        stack.append((node, depth, True))
        for child in children:
            if id(child) not in sizes:
                stack.append((child, depth + 1, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def may_alias(text: str) -> bool:
    """Whether ``text`` may hold an alias (then values can be shared and need ``plain``)."""
    return "*" in text and _ALIAS.search(text) is not None


def plain(value: Any) -> Any:
    """Deep copy into plain dicts/lists (drops line bookkeeping and alias sharing).

    Bounded by ``MAX_NODES``: documents past it were refused at load.
    """
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def yaml_error_line(exc: yaml.YAMLError) -> int:
    if isinstance(exc, YamlLimitError):
        return exc.line
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark is not None else 1


def yaml_error_text(exc: yaml.YAMLError) -> str:
    if isinstance(exc, YamlLimitError):
        return exc.problem
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    text = ", ".join(p for p in parts if p)
    if "exceeded maximum nesting depth" in text:  # libyaml's own bound (1000)
        return f"nesting deeper than {MAX_DEPTH} levels"
    return " ".join((text or str(exc).splitlines()[0]).split())
