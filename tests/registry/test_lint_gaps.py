"""``wippy lint`` finds every problem of every file, once, as ``file:line: id: message``;
the watcher reports the same lines and holds back only the broken file."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

import pytest

from wippy_agents.cli import main
from wippy_agents.registry import AppSettings, Registry

from .conftest import Recorder, eventually, write


def lint(capsys, root) -> tuple[int, list[str], str]:
    code = main(["lint", "--app", str(root)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


_TOOL = """\
namespace: app.tools
entries:
  - name: t
    kind: function.lua
    meta: {type: tool, description: x}
    source: "return { handler = function() end }"
    input_schema: {type: object}
"""


@pytest.mark.parametrize("text, what", [("- a\n- b\n", "a list"), ("just text\n", "a string"), ("42\n", "a number")])
def test_a_file_whose_top_level_is_not_a_mapping_is_an_error(app, capsys, monkeypatch, text, what):
    monkeypatch.chdir(app)
    write(app / "tools" / "shape.yaml", text)
    code, out, _ = lint(capsys, app)
    assert code == 1 and out == [f"tools/shape.yaml:1: an entry file's top level must be a mapping with namespace and entries, got {what}"]


def test_a_single_file_app_whose_top_level_is_a_list_is_an_error(tmp_path, capsys):
    app_file = write(tmp_path / "app.yaml", "- a\n- b\n")
    code, out, _ = lint(capsys, app_file)
    assert code == 1 and len(out) == 1 and "top level must be a mapping" in out[0] and out[0].split(": ")[0].endswith("app.yaml:1")


@pytest.mark.parametrize(
    "field, line, message",
    [
        ("    sourc: x\n", 8, "unknown field `sourc` (did you mean `source`?)"),
        ("    modeles: [json]\n", 8, "unknown field `modeles` (did you mean `modules`?)"),
        ("    limits: {memroy: 1}\n", 8, "unknown field `limits.memroy` (did you mean `memory`?)"),
        ("    zzzzzz: 1\n", 8, "unknown field `zzzzzz`"),
    ],
    ids=["sourc", "modeles", "nested", "no-suggestion"],
)
def test_unknown_fields_are_named_with_the_closest_known_one(app, capsys, monkeypatch, field, line, message):
    monkeypatch.chdir(app)
    write(app / "tools" / "t.yaml", _TOOL + field)
    code, out, _ = lint(capsys, app)
    assert code == 1 and out == [f"tools/t.yaml:{line}: app.tools:t: {message}"]


def test_registry_entry_stays_free_form(app, capsys):
    write(app / "tools" / "db.yaml", "namespace: app.db\nentries:\n  - {name: pg, kind: registry.entry, hots: a, anything: [1]}\n")
    code, out, _ = lint(capsys, app)
    assert (code, out) == (0, [])


def test_method_must_exist_in_the_lua_source(app, capsys, monkeypatch):
    monkeypatch.chdir(app)
    write(app / "tools" / "t.yaml", _TOOL + "    method: nothere\n")
    code, out, _ = lint(capsys, app)
    assert code == 1 and out == ["tools/t.yaml:8: app.tools:t: method `nothere` is not defined in the Lua source; it defines handler"]


def test_a_method_returned_under_its_name_is_found(app, capsys):
    write(app / "tools" / "t.yaml", _TOOL.replace('"return { handler = function() end }"', '"local function run() end\\nreturn {go = run}"')
          + "    method: go\n")
    code, out, _ = lint(capsys, app)
    assert (code, out) == (0, [])


def test_input_schema_is_checked_against_the_meta_schema(app, capsys, monkeypatch):
    monkeypatch.chdir(app)
    write(app / "tools" / "t.yaml", _TOOL.replace("{type: object}", "{type: objekt}"))
    code, out, _ = lint(capsys, app)
    assert code == 1 and len(out) == 1
    assert out[0].startswith("tools/t.yaml:7: app.tools:t: input_schema: not a valid JSON Schema: type:")


def test_a_missing_namespace_says_so(app, capsys, monkeypatch):
    monkeypatch.chdir(app)
    write(app / "tools" / "t.yaml", "entries:\n  - {name: x, kind: prompt, text: hi}\n")
    code, out, _ = lint(capsys, app)
    assert code == 1 and out == ["tools/t.yaml:1: missing namespace: a document needs namespace: like 'app.tools'"]


def test_lint_in_an_empty_directory_warns_and_creates_nothing(tmp_path, capsys):
    code, out, err = lint(capsys, tmp_path)
    assert (code, out) == (0, []) and "warning:" in err and "no entry files" in err
    assert list(tmp_path.iterdir()) == []


def test_merge_keys_follow_yaml_later_keys_override(app, capsys):
    write(app / "tools" / "m.yaml", """\
        namespace: app.db
        entries:
          - &base {name: a, kind: registry.entry, host: one, port: 1}
          - <<: *base
            name: b
            port: 2
        """)
    code, out, _ = lint(capsys, app)
    assert (code, out) == (0, [])
    from wippy_agents.registry.loader import load_sources

    entries = {str(e.id): e for e in load_sources(AppSettings.load(app)).entries}
    assert entries["app.db:b"].data == {"host": "one", "port": 2}


def test_a_key_twice_in_one_mapping_is_still_an_error_beside_a_merge(app, capsys):
    write(app / "tools" / "m.yaml", "namespace: app.db\nentries:\n  - &b {name: a, kind: registry.entry}\n  - {<<: *b, name: b, name: c}\n")
    code, out, _ = lint(capsys, app)
    assert code == 1 and "duplicate key 'name'" in out[0]


def test_the_version_document_key_is_accepted(app, capsys, monkeypatch):
    monkeypatch.chdir(app)
    write(app / "tools" / "v.yaml", 'version: "1.0"\nnamespace: app.v\nentries: []\n')
    assert lint(capsys, app)[:2] == (0, [])
    write(app / "tools" / "v.yaml", 'version: "7"\nnamesapce: app.v\nentries: []\n')
    code, out, _ = lint(capsys, app)
    assert code == 1
    assert "tools/v.yaml:1: document version '7' is not supported; write version: \"1.0\"" in out
    assert any("unknown document key 'namesapce' (did you mean `namespace`?)" in line for line in out)


_TEN_PROBLEMS = """\
namespace: app.tools
entries:
  - {name: a, kind: function.lua, source: "return {}", sourc: 1}
  - {name: b, kind: function.lua, source: "return {}", modeles: [json]}
  - {name: c, kind: functon.lua}
  - {name: d, kind: prompt}
  - {name: e, kind: agent, model: nothere}
"""


@contextmanager
def _captured(name: str) -> Iterator[list[logging.LogRecord]]:
    """Records of logger ``name`` (a handler of its own: independent of the CLI's logging set-up)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_every_problem_is_reported_once_in_lint_and_in_the_watcher_alike(app, capsys, monkeypatch):
    monkeypatch.chdir(app)
    write(app / "tools" / "many.yaml", _TEN_PROBLEMS)
    code, out, _ = lint(capsys, app)
    assert code == 1 and len(out) >= 5 and len(set(out)) == len(out)
    assert not any("more problem" in line for line in out)

    async def watch() -> list[str]:
        (app / "tools" / "many.yaml").unlink()
        reg = Registry(author_default="test")
        await reg.load(AppSettings.load(app))
        errors: list = []
        reg.watch(on_error=errors.append)
        try:
            write(app / "tools" / "many.yaml", _TEN_PROBLEMS)
            await eventually(lambda: errors)
            return str(errors[0]).splitlines()
        finally:
            await reg.close()

    import asyncio

    with _captured("wippy_agents.registry.watcher") as records:
        watched = asyncio.run(watch())
    rel = {line.replace(str(app) + "/", "") for line in watched}
    lint_lines = set(out)
    assert rel <= lint_lines and len(rel) >= 3  # lint adds whole-app checks the watcher makes on apply
    logged = [r.getMessage() for r in records]
    assert sorted(logged) == sorted(watched)  # each logged once, one line each


async def test_a_broken_file_holds_back_only_its_own_entries(app):
    reg = Registry(author_default="test")
    await reg.load(AppSettings.load(app))
    rec, errors = Recorder(), []
    reg.subscribe(rec)
    reg.watch(on_error=errors.append)
    try:
        with _captured("wippy_agents.registry.watcher") as records:
            write(app / "prompts" / "a.yaml", "namespace: app.prompts\nentries: [oops\n")
            await eventually(lambda: errors)
            write(app / "prompts" / "b.yaml", "namespace: app.prompts\nentries:\n  - {name: b, kind: prompt, text: hi}\n")
            version, ids = await rec.wait_for(lambda v, ids: ids == ["app.prompts:b"])
            write(app / "prompts" / "c.yaml", "namespace: app.prompts\nentries:\n  - {name: c, kind: prompt, text: hi}\n")
            await rec.wait_for(lambda v, ids: ids == ["app.prompts:c"])
        [record] = await reg.history(limit=1)
        assert record.reason == f"saved {app / 'prompts' / 'c.yaml'}"
        assert len(errors) == 1 and len([r for r in records if "a.yaml" in r.getMessage()]) == 1
    finally:
        await reg.close()


async def test_files_that_cannot_apply_together_apply_each_on_its_own(app):
    reg = Registry(author_default="test")
    await reg.load(AppSettings.load(app))
    rec, errors = Recorder(), []
    reg.subscribe(rec)
    watcher = reg.watch(on_error=errors.append)
    try:
        write(app / "prompts" / "good.yaml", "namespace: app.prompts\nentries:\n  - {name: g, kind: prompt, text: hi}\n")
        write(app / "prompts" / "badref.yaml", "namespace: app.agents\nentries:\n  - {name: x, kind: agent, model: app.models:none, prompt: hi}\n")
        await watcher.handle_paths({str(app / "prompts" / "good.yaml"), str(app / "prompts" / "badref.yaml")})
        assert reg.get("app.prompts:g") is not None and reg.get("app.agents:x") is None
        assert any("refers to 'app.models:none'" in str(e) for e in errors)
    finally:
        await reg.close()


async def test_a_version_names_the_file_actually_saved(app):
    reg = Registry(author_default="test")
    await reg.load(AppSettings.load(app))
    rec = Recorder()
    reg.subscribe(rec)
    reg.watch()
    try:
        (app / "tools" / "weather.lua").write_text("return { handler = function() return 'rain' end }\n")
        await rec.wait_for(lambda v, ids: ids == ["app.tools:weather"])
        [record] = await reg.history(limit=1)
        assert record.reason == f"saved {app / 'tools' / 'weather.lua'}"
    finally:
        await reg.close()


def test_rollback_and_lint_say_when_a_file_entry_is_held_back(app, tmp_path, capsys):
    store = ["--store", f"sqlite:///{tmp_path / 'state.db'}"]
    assert main(["registry", "list", "--app", str(app), *store]) == 0
    assert main(["registry", "history", "--app", str(app), *store]) == 0  # nothing persisted by list
    import asyncio

    from wippy_agents.registry import Registry as _Registry
    from wippy_agents.store import open_store

    async def load_twice() -> None:
        s = await open_store(store[1])
        try:
            await _Registry(s).load(AppSettings.load(app))  # version 1
            write(app / "prompts" / "late.yaml", "namespace: app.prompts\nentries:\n  - {name: late, kind: prompt, text: hi}\n")
            await _Registry(s).load(AppSettings.load(app))  # version 2 adds app.prompts:late
        finally:
            await s.close()

    asyncio.run(load_twice())
    capsys.readouterr()
    assert main(["registry", "rollback", "1", "--app", str(app), *store]) == 0
    out = capsys.readouterr().out
    assert "rolled back to version 1 as version 3" in out
    assert "1 entry defined in files now differs from the live registry" in out and "app.prompts:late: removed by the rollback although its file still defines it" in out
    code = main(["lint", "--app", str(app), *store])
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and len(out) == 1
    assert out[0].endswith("late.yaml:3: app.prompts:late: warning: the live registry does not have this entry: it was "
                           "deleted at run time (a rollback, an agent or the CLI); save the file to apply it again")


def test_a_refused_load_names_every_problem_as_lint_does(app, capsys, monkeypatch):
    import asyncio

    from wippy_agents.console.registry_cmd import builtins, validators
    from wippy_agents.errors import LoadError

    monkeypatch.chdir(app)
    write(app / "tools" / "many.yaml", _TEN_PROBLEMS)
    write(app / "tools" / "broken.yaml", "namespace: app.x\nentries: [oops\n")
    code, lint_lines, _ = lint(capsys, app)
    assert code == 1
    reg = Registry(builtins=builtins())
    for fn in validators():
        reg.add_validator(fn)
    with pytest.raises(LoadError) as info:
        asyncio.run(reg.load(AppSettings.load(app)))
    loaded = {line.replace(str(app) + "/", "") for line in str(info.value).splitlines()}
    assert loaded == set(lint_lines)
