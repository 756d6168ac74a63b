"""A bounded Hypothesis fuzz of entry files through ``wippy lint``: exit 0 or 1,
never a traceback, every output line ``file:line: ...``, bounded time."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wippy_agents.cli import main

_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["file://nope.lua", "${env:NOPE}", "app.tools:*", "handler", "&a", "*a", "<<"]),
)
_FIELDS = st.sampled_from(["name", "kind", "meta", "source", "method", "modules", "input_schema", "imports", "text",
                           "sourc", "limits", "entries", "namespace", "version", "<<"])
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_FIELDS, inner, max_size=4), max_leaves=12)
_KINDS = st.sampled_from(["function.lua", "library.lua", "prompt", "agent", "registry.entry", "llm.model", "nope"])
_ENTRY = st.fixed_dictionaries({"name": st.text("abc_-:1", min_size=0, max_size=6), "kind": _KINDS},
                               optional={"source": _VALUES, "method": _VALUES, "text": _VALUES, "modules": _VALUES,
                                         "input_schema": _VALUES, "sourc": _VALUES, "meta": _VALUES})
_DOC = st.one_of(
    st.fixed_dictionaries({"namespace": st.sampled_from(["app.tools", "bad ns", "", "x"]), "entries": st.lists(_ENTRY, max_size=3)},
                          optional={"version": st.sampled_from(["1.0", "2", 1])}),
    _VALUES,
)


def _yaml_text(doc, mangle: int) -> str:
    import yaml

    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    if mangle and text:  # cut or duplicate a piece: broken YAML on purpose
        cut = mangle % len(text)
        text = text[:cut] + (text[cut:] if mangle % 3 else text[cut // 2:])
    return text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(docs=st.lists(_DOC, min_size=1, max_size=2), mangle=st.integers(0, 500))
def test_lint_of_any_entry_file_exits_0_or_1_without_traceback(tmp_path_factory, capsys, docs, mangle):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "tools").mkdir()
    (root / "tools" / "f.yaml").write_text("---\n".join(_yaml_text(d, mangle) for d in docs))
    started = time.perf_counter()
    code = main(["lint", "--app", str(root)])
    elapsed = time.perf_counter() - started
    out, err = capsys.readouterr()
    assert code in (0, 1), (code, out, err)
    assert "Traceback" not in out + err and "wippy: error" not in err, err
    for line in out.splitlines():
        assert line.split(":", 1)[0].endswith("f.yaml") or line.startswith(str(root)) or "f.yaml:" in line, line
    assert elapsed < 10, f"lint took {elapsed:.1f} s"


_KIND_NAMES = st.sampled_from(["function.lua", "library.lua", "process.lua", "workflow.lua", "agent", "prompt",
                               "llm.model", "security.policy", "process.service", "process.host", "registry.entry"])


@settings(max_examples=150, deadline=None)
@given(kind=_KIND_NAMES, fields=st.dictionaries(_FIELDS | st.sampled_from(["model", "tools", "rules", "provider", "host",
                                                                            "restart", "idempotent", "examples"]),
                                                _VALUES, max_size=5))
def test_the_compiled_fast_check_agrees_with_jsonschema(kind, fields):
    """The fastjsonschema gate never passes an entry jsonschema would refuse (nor the reverse)."""
    from wippy_agents.registry import kinds

    handler = kinds.get(kind)
    doc = {"name": "x", "kind": kind, "meta": {}, **{k: v for k, v in fields.items() if k not in ("name", "kind", "meta")}}
    if handler.quick_check is None:
        return
    try:
        handler.quick_check(doc)
        quick_ok = True
    except Exception:  # noqa: BLE001 - fastjsonschema's refusal
        quick_ok = False
    assert quick_ok == handler.validator.is_valid(doc), doc
