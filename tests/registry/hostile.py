"""The hostile-input corpus (SPEC §3): entry files that must be refused with one
line naming the file, never a hang, a crash or a traceback."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HOSTILE", "Hostile"]


@dataclass(frozen=True)
class Hostile:
    id: str
    content: bytes
    fragment: str  # what the problem line says
    line: int | None = None  # the line it names, when it must be exact


def _laughs_list() -> str:
    lines = ["namespace: app.tools", "entries:", "  - name: bomb", "    kind: registry.entry",
             '    a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append(f"    a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _laughs_map() -> str:
    lines = ["lol0: &l0 {a: lol, b: lol, c: lol, d: lol, e: lol, f: lol, g: lol, h: lol}"]
    for i in range(1, 10):
        lines.append(f"lol{i}: &l{i} {{" + ", ".join(f"k{j}: *l{i - 1}" for j in range(9)) + "}")
    lines.append("namespace: app.tools\nentries: []")
    return "\n".join(lines) + "\n"


def _laughs_merge() -> str:
    lines = ["namespace: app.tools", "entries:", '  - &e0 {name: x, kind: registry.entry, v: [1, 2, 3, 4, 5, 6, 7, 8]}']
    for i in range(1, 10):
        lines.append(f"  - &e{i} {{<<: *e{i - 1}, name: x{i}, w: [" + ", ".join([f"*e{i - 1}"] * 9) + "]}")
    return "\n".join(lines) + "\n"


def _deep_block(n: int) -> str:
    # compact nested block sequences: "- - - ... x" is n levels on one line
    return "namespace: app.tools\nentries:\n  " + "- " * n + "x\n"


_GOOD_HEAD = "namespace: app.tools\nentries:\n  - name: h\n    kind: function.lua\n    source: \"return {handler = function() end}\"\n"

HOSTILE: list[Hostile] = [
    Hostile("billion-laughs-lists", _laughs_list().encode(), "aliases expand to more than", None),
    Hostile("billion-laughs-mappings", _laughs_map().encode(), "aliases expand to more than", None),
    Hostile("billion-laughs-merge-keys", _laughs_merge().encode(), "aliases expand to more than", None),
    Hostile("recursive-alias", b"namespace: app.tools\nentries: &a [*a]\n", "recursive alias", 2),
    Hostile("nesting-200-flow", ("namespace: app.tools\nentries: " + "[" * 200 + "]" * 200 + "\n").encode(), "nesting deeper than", None),
    Hostile("nesting-10k-flow-lists", ("namespace: app.tools\nentries: " + "[" * 10_000 + "]" * 10_000 + "\n").encode(), "malformed YAML", None),
    Hostile("nesting-10k-flow-maps", ("x: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n").encode(), "malformed YAML", None),
    Hostile("nesting-10k-block", _deep_block(10_000).encode(), "malformed YAML", None),
    Hostile("file-50mb", b"namespace: app.tools\nentries: []\n# " + b"x" * (50 * 1024 * 1024) + b"\n", "file too large", 1),
    Hostile("invalid-utf8", b"namespace: app.tools\nentries:\n  - {name: x, kind: prompt, text: \"caf\xe9\"}\n", "not UTF-8", 3),
    Hostile("tab-indentation", b"namespace: app.tools\nentries:\n\t- {name: x, kind: prompt, text: hi}\n", "malformed YAML", 3),
    Hostile("duplicate-keys", b"namespace: app.tools\nnamespace: app.other\nentries: []\n", "duplicate key 'namespace'", 2),
    Hostile("python-object-tag", b"namespace: app.tools\nentries:\n  - !!python/object/apply:os.system [\"echo pwned\"]\n", "python/object/apply", 3),
    Hostile("python-name-tag", b"namespace: !!python/name:os.system\nentries: []\n", "python/name", 1),
    Hostile("huge-integer", (_GOOD_HEAD + "    limits: {instructions: 1" + "0" * 5000 + "}\n").encode(), "integer out of range", 6),
    Hostile("integer-past-64-bits", (_GOOD_HEAD + "    limits: {instructions: 99999999999999999999}\n").encode(), "integer out of range", 6),
    Hostile("nan-timeout", (_GOOD_HEAD + "    limits: {timeout: .nan}\n").encode(), "not a finite number", 6),
    Hostile("inf-timeout", (_GOOD_HEAD + "    limits: {timeout: -.inf}\n").encode(), "not a finite number", 6),
]
