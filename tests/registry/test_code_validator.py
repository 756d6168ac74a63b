"""The Lua validator compiles each distinct source once per check, and still
judges every entry: its own method, its own error location."""

from __future__ import annotations

from wippy_agents.errors import LuaCompileError
from wippy_agents.lua import compile_check
from wippy_agents.registry.entry import Entry
from wippy_agents.registry.ids import EntryId
from wippy_agents.registry.snapshot import Snapshot
from wippy_agents.registry.validation import code_validator

GOOD = "return {handler = function(a) return a end}"
BAD = "return {handler = function(a) return a"


def _fn(name: str, source: str, method: str = "handler", kind: str = "function.lua", line: int = 3) -> Entry:
    return Entry(id=EntryId(f"app.t:{name}"), kind=kind, data={"source": source, "method": method},
                 file="/app/t.yaml", line=line, origin="file", field_lines={"source": line + 1})


def test_each_distinct_source_compiles_once_and_every_entry_is_judged():
    seen: list[tuple[str, str]] = []

    def check(source: str, chunk: str) -> None:
        seen.append((source, chunk))
        compile_check(source, chunk)

    entries = [_fn("a", GOOD), _fn("b", GOOD), _fn("c", GOOD, method="nothere"), _fn("d", GOOD, method="nothere"),
               _fn("lib", GOOD, method="nothere", kind="library.lua"),
               _fn("x", BAD, line=10), _fn("y", BAD, line=20)]
    problems = code_validator(check)(entries, Snapshot(1, {str(e.id): e for e in entries}))
    # a source that compiled is not compiled again; one that failed is compiled for each entry (its own name)
    assert seen == [(GOOD, "app.t:a"), (BAD, "app.t:x"), (BAD, "app.t:y")]
    by_entry = {p.entry: p for p in problems}
    assert set(by_entry) == {"app.t:c", "app.t:d", "app.t:x", "app.t:y"}
    assert "method `nothere` is not defined" in by_entry["app.t:c"].message
    assert "method `nothere`" in by_entry["app.t:d"].message
    assert "app.t:x" in by_entry["app.t:x"].message and by_entry["app.t:x"].line == 12
    assert "app.t:y" in by_entry["app.t:y"].message and by_entry["app.t:y"].line == 22


def test_a_method_that_is_not_a_string_is_left_to_the_schema():
    entries = [_fn("a", GOOD, method=["handler"]), _fn("b", GOOD, method=["handler"])]  # type: ignore[arg-type]
    assert code_validator(compile_check)(entries, Snapshot(1, {})) == []


def test_compile_errors_are_lua_compile_errors():
    try:
        compile_check(BAD, "app.t:x")
    except LuaCompileError as exc:
        assert exc.details["line"] == 1
    else:  # pragma: no cover
        raise AssertionError("should not compile")
