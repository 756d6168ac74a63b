"""Loading apps: folders, single files, file://, ${env:...}, and bad files located by file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from wippy_agents.errors import ConfigError, LoadError
from wippy_agents.registry import AppSettings, load_file, load_sources

from .conftest import write


def test_folder_app_loads_with_file_sources_inlined(settings, app):
    result = load_sources(settings)
    assert result.problems == []
    by_id = {str(e.id): e for e in result.entries}
    weather = by_id["app.tools:weather"]
    assert weather.data["source"].startswith("return {")
    assert weather.data["source_path"] == str(app / "tools" / "weather.lua")
    assert weather.file == str(app / "tools" / "weather.yaml") and weather.line == 3
    assert weather.meta == {"type": "tool", "description": "Current weather for a city"}
    assert set(weather.data) == {"source", "source_path", "method", "input_schema"}
    assert weather.origin == "file"
    assert by_id["app.models:default"].file.endswith("assistant.yaml")


def test_settings_defaults_and_wippy_yaml(tmp_path):
    s = AppSettings.load(tmp_path)
    assert s.sources == ("agents", "tools", "prompts")
    assert s.store == f"sqlite:///{tmp_path}/.wippy/state.db"
    write(tmp_path / "wippy.yaml", "sources: [entries]\nstore: sqlite:///data/x.db\nnode: n1\n")
    s = AppSettings.load(tmp_path, node="n2")
    assert (s.sources, s.store, s.node) == (("entries",), f"sqlite:///{tmp_path}/data/x.db", "n2")


def test_settings_refuse_bad_values(tmp_path):
    write(tmp_path / "wippy.yaml", "store: mysql://x\n")
    with pytest.raises(ConfigError, match="wippy.yaml: store 'mysql://x' is not"):
        AppSettings.load(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        AppSettings.load(tmp_path / "nope")


def test_single_file_app_with_settings_document_and_inline_source(tmp_path):
    app_file = write(
        tmp_path / "app.yaml",
        """\
        wippy:
          node: solo
        ---
        namespace: app.tools
        entries:
          - name: hello
            kind: function.lua
            source: |
              return { handler = function() return "hi" end }
        ---
        namespace: app.db
        entries:
          - {name: main, kind: registry.entry, host: db.local}
        """,
    )
    s = AppSettings.load(app_file)
    assert (s.node, s.app_file, s.root) == ("solo", app_file, tmp_path)
    result = load_sources(s)
    assert result.problems == []
    assert sorted(str(e.id) for e in result.entries) == ["app.db:main", "app.tools:hello"]


def test_env_references_are_stored_as_written_and_expanded_at_use(tmp_path):
    f = write(
        tmp_path / "db.yaml",
        """\
        namespace: app.db
        entries:
          - name: main
            kind: registry.entry
            host: "${env:DB_HOST}"
            port: "${env:DB_PORT:-5432}"
            meta: {owner: "${env:OWNER}"}
        """,
    )
    [entry] = load_file(f, environ={"DB_HOST": "db.internal", "OWNER": "ops"})
    assert entry.data == {"host": "${env:DB_HOST}", "port": "${env:DB_PORT:-5432}"}
    from wippy_agents.security.secrets import shown

    env = {"DB_HOST": "db.internal", "OWNER": "ops"}
    assert shown(entry.data, environ=env) == {"host": "db.internal", "port": "5432"}
    assert shown(entry.meta, environ=env) == {"owner": "ops"}


def test_missing_env_variable_names_file_line_and_entry(tmp_path):
    f = write(
        tmp_path / "db.yaml",
        """\
        namespace: app.db
        entries:
          - name: main
            kind: registry.entry
            host: "${env:WIPPY_TEST_UNSET_VAR}"
        """,
    )
    with pytest.raises(LoadError) as err:
        load_file(f, environ={})
    assert str(err.value) == (
        f"{f}:5: app.db:main: environment variable 'WIPPY_TEST_UNSET_VAR' is not set "
        "(write ${env:WIPPY_TEST_UNSET_VAR:-default} for a default)"
    )


def test_malformed_yaml_names_file_and_line(tmp_path):
    f = write(tmp_path / "bad.yaml", "namespace: app.x\nentries:\n  - name: a\n    kind: [unclosed\n")
    with pytest.raises(LoadError) as err:
        load_file(f)
    assert str(err.value).startswith(f"{f}:")
    assert "malformed YAML" in str(err.value)
    line = int(str(err.value).split(":")[1])
    assert line >= 4


def test_duplicate_key_in_yaml_is_an_error(tmp_path):
    f = write(tmp_path / "dup.yaml", "namespace: app.x\nentries:\n  - name: a\n    kind: registry.entry\n    kind: prompt\n")
    with pytest.raises(LoadError, match=r"dup.yaml:5: malformed YAML: .*duplicate key 'kind'"):
        load_file(f)


def test_missing_source_file_names_file_line_and_entry(tmp_path):
    f = write(
        tmp_path / "t.yaml",
        """\
        namespace: app.tools
        entries:
          - name: ghost
            kind: function.lua
            source: file://ghost.lua
        """,
    )
    with pytest.raises(LoadError) as err:
        load_file(f)
    assert str(err.value) == f"{f}:5: app.tools:ghost: source: file '{tmp_path / 'ghost.lua'}' not found"


def test_missing_name_or_kind_is_located(tmp_path):
    f = write(tmp_path / "t.yaml", "namespace: app.x\nentries:\n  - kind: prompt\n    text: hi\n  - name: b\n    text: hi\n")
    with pytest.raises(LoadError) as err:
        load_file(f)
    problems = err.value.details["problems"]
    assert [(p["line"], p["message"]) for p in problems] == [
        (3, "missing required field 'name'"),
        (5, "missing required field 'kind'"),
    ]
    assert problems[1]["entry"] == "app.x:b"


def test_duplicate_id_across_files_names_both_places(app):
    write(app / "prompts" / "again.yaml", "namespace: app.prompts\nentries:\n  - {name: assistant, kind: prompt, text: x}\n")
    result = load_sources(AppSettings.load(app))
    [problem] = result.problems
    assert problem.entry == "app.prompts:assistant" and problem.file.endswith("again.yaml")
    assert "duplicate id, also defined at" in problem.message and "assistant.yaml" in problem.message


def test_a_yaml_file_whose_top_level_is_a_list_is_an_error(app):
    write(app / "agents" / "script.yaml", "- text: hello\n- text: bye\n")
    result = load_sources(AppSettings.load(app))
    [problem] = result.problems
    assert problem.file.endswith("script.yaml") and problem.line == 1
    assert "top level must be a mapping with namespace and entries, got a list" in problem.message
    assert len(result.entries) == 4


def test_settings_document_in_a_folder_file_is_an_error(app):
    write(app / "agents" / "x.yaml", "wippy: {node: a}\n")
    [problem] = load_sources(AppSettings.load(app)).problems
    assert "belongs in wippy.yaml" in problem.message


def test_the_repository_default_app_loads_clean():
    root = Path(__file__).resolve().parents[2]
    result = load_sources(AppSettings.load(root))
    assert result.problems == []
    assert any(e.kind == "function.lua" for e in result.entries)
    assert any(e.kind == "prompt" for e in result.entries)
