"""The line-keeping loader builds what PyYAML's safe loader builds (it skips the
constructor's per-node bookkeeping, not its rules), keeps document and entry
lines, and refuses the same things."""

from __future__ import annotations

import datetime

import pytest
import yaml

from wippy_agents.registry import yamlio
from wippy_agents.registry.yamlio import LineDict, load_documents, plain

SAME = [
    "a: 1\nb: [1, 2, {c: d}]\n",
    "n: ~\nm: null\ne:\nt: [true, True, yes, No, off, ON]\n",
    "ints: [0, 7, 010, 0o17, 0x1F, 0b101, -3, +4, 1_000, 190:20:30, 123456789012345678]\n",
    "floats: [1.5, -0.25, 1e3, 6.8523015e+5, 1_000.5, 190:20:30.15, .5]\n",
    "strs: ['1', \"true\", plain text, 'null', !!str 12, 0.0.1, '']\n",
    "when: 2001-12-14t21:59:43.10-05:00\nday: 2002-12-14\n",
    "bin: !!binary aGVsbG8=\nset: !!set {a, b}\nomap: !!omap [{a: 1}, {b: 2}]\npairs: !!pairs [{a: 1}, {a: 2}]\n",
    "base: &b {x: 1, y: [1, 2]}\nuse: *b\nagain: *b\nlist: &l [1, 2]\nl2: *l\n",
    "base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n",
    "a: &a {x: 1}\nb: &b {y: 2}\nm: {<<: [*a, *b], z: 3}\n",
    "= : eq\nk: v\n",
    "1: one\n2.5: two\nfalse: no\n~: nothing\n",
    "---\na: 1\n---\n- 1\n- 2\n--- plain\n--- 5\n",
    "nested: {a: {b: {c: {d: [[[1]]]}}}}\n",
    "text: |\n  line one\n  line two\nfold: >\n  folded\n  text\n",
]


@pytest.mark.parametrize("text", SAME)
def test_builds_what_the_safe_loader_builds(text: str) -> None:
    ours = [plain(d) for d in load_documents(text)]
    theirs = [d for d in yaml.load_all(text, Loader=yaml.SafeLoader) if d is not None]
    assert ours == theirs
    assert [type(d) for d in ours] == [type(d) for d in theirs]


def test_scalar_types_are_exact() -> None:
    (doc,) = load_documents("i: 5\nb: true\no: 010\nf: 1.0\nd: 2002-12-14\ns: '5'\n")
    assert [type(v) for v in doc.values()] == [int, bool, int, float, datetime.date, str]
    assert doc["o"] == 8


def test_an_alias_is_a_copy_at_each_use() -> None:
    (doc,) = load_documents("base: &b {x: [1]}\nuse: *b\n")
    assert doc["base"] == doc["use"] and doc["base"] is not doc["use"]
    assert doc["base"]["x"] is not doc["use"]["x"]


def test_documents_and_entries_keep_lines() -> None:
    text = "namespace: app\nentries:\n  - name: a\n    kind: k\n    meta: {x: 1}\n\n  - {name: b, kind: k}\n"
    (doc,) = load_documents(text)
    assert isinstance(doc, LineDict) and doc.line == 1 and doc.key_lines == {"namespace": 1, "entries": 2}
    first, second = doc["entries"]
    assert (first.line, first.key_lines) == (3, {"name": 3, "kind": 4, "meta": 5})
    assert (second.line, second.key_lines) == (7, {"name": 7, "kind": 7})
    assert type(first["meta"]) is dict


def test_merge_keeps_entry_lines() -> None:
    text = "namespace: app\nentries:\n  - &e {name: a, kind: k}\n  - <<: *e\n    name: b\n"
    (doc,) = load_documents(text)
    second = doc["entries"][1]
    assert plain(second) == {"name": "b", "kind": "k"}
    assert second.line == 4 and second.key_lines["name"] == 5


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("m: {<<: {a: 1}, b: 1, b: 2}\n", "duplicate key 'b'"),
        ("? [1, 2]\n: x\n", "unhashable mapping key"),
        ("n: 99999999999999999999\n", "integer out of range"),
        ("n: -9223372036854775809\n", "integer out of range"),
        ("n: .nan\n", "not a finite number"),
        ("n: [-.inf]\n", "not a finite number"),
        ("x: !!python/object:os.system {}\n", "could not determine a constructor"),
        ("x: !custom 1\n", "could not determine a constructor"),
        ("a: &a [*a]\n", "recursive alias"),
        ("a: " + "[" * 70 + "]" * 70 + "\n", "nesting deeper than"),
        ("a:\n" + "".join("  " * i + "- \n" for i in range(1, 70)), "nesting deeper than"),
        ("m: !!set {" + "{a: " * 70 + "1" + "}" * 70 + ": null}\n", "nesting deeper than"),
    ],
)
def test_refuses_what_it_refused(text: str, fragment: str) -> None:
    with pytest.raises(yaml.YAMLError) as info:
        load_documents(text)
    assert fragment in (yamlio.yaml_error_text(info.value) + str(info.value))


def test_the_int_fast_path_agrees_at_the_64_bit_edges() -> None:
    (doc,) = load_documents("a: 9223372036854775807\nb: 999999999999999999\nc: 0\n")
    assert doc == {"a": 2**63 - 1, "b": 999999999999999999, "c": 0}
    with pytest.raises(yaml.YAMLError):
        load_documents("a: 9223372036854775808\n")


def test_the_resolver_memo_is_bounded_and_answers_as_the_resolver_does() -> None:
    text = "\n".join(f"k{i}: v{i}" for i in range(yamlio._MEMO_MAX + 50)) + "\n"
    (doc,) = load_documents(text)
    assert len(doc) == yamlio._MEMO_MAX + 50 and doc["k7"] == "v7"
    assert len(yamlio._MEMO) <= yamlio._MEMO_MAX
    assert all(len(v) <= yamlio._MEMO_LEN for v in yamlio._MEMO)
    resolver = yaml.resolver.Resolver()
    for value, tag in list(yamlio._MEMO.items()):
        assert resolver.resolve(yaml.ScalarNode, value, (True, False)) == tag
    # a value remembered as a key resolves the same as a value, quoted or not
    (doc,) = load_documents("yes: yes\n'no': 'no'\n010: '010'\n")
    assert doc == {True: True, "no": "no", 8: "010"}


@pytest.mark.parametrize("text", SAME)
def test_the_pure_python_fallback_builds_the_same(monkeypatch, text: str) -> None:
    monkeypatch.setattr(yamlio, "LIBYAML", False)
    monkeypatch.setattr(yamlio, "_Loader", yamlio._loader_class())
    monkeypatch.setattr(yamlio, "_warned", True)
    assert not issubclass(yamlio._Loader, yaml.CSafeLoader)
    ours = [plain(d) for d in load_documents(text)]
    assert ours == [d for d in yaml.load_all(text, Loader=yaml.SafeLoader) if d is not None]
