"""``wippy lint`` and ``wippy registry ...`` in-process, over both stores."""

from __future__ import annotations

import json
import os

from wippy_agents.cli import main

from .conftest import write


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_lint_passes_a_clean_app(app, capsys):
    code, out, err = run(capsys, "lint", "--app", str(app))
    assert (code, out) == (0, "") and "ok" in err


def test_lint_prints_file_line_entry_message_and_exits_1(app, capsys, monkeypatch):
    monkeypatch.chdir(app)
    write(
        app / "tools" / "broken.yaml",
        """\
        namespace: app.tools
        entries:
          - name: broken
            kind: function.lua
            source: file://broken.lua
          - name: typo
            kind: functon.lua
            source: "return {}"
          - name: inline
            kind: library.lua
            source: |
              return {
                x = = 1
              }
        """,
    )
    write(app / "tools" / "broken.lua", "local M = {}\nfunction M.handler(\nreturn M\n")
    write(app / "agents" / "other.yaml", "namespace: app.agents\nentries:\n  - {name: b, kind: agent, model: app.models:nope, prompt: Hi there}\n")
    code, out, err = run(capsys, "lint")
    lines = out.splitlines()
    assert code == 1 and "4 problems" in err
    assert "agents/other.yaml:3: app.agents:b: model: refers to 'app.models:nope', which does not exist" in lines
    assert any(line.startswith("tools/broken.lua:3: app.tools:broken: Lua does not compile:") for line in lines), lines
    assert "tools/broken.yaml:7: app.tools:typo: unknown kind 'functon.lua'; known kinds: " in out
    assert any(line.startswith("tools/broken.yaml:13: app.tools:inline: Lua does not compile:") for line in lines), lines


def test_lint_reports_a_bad_yaml_file(app, capsys):
    write(app / "tools" / "bad.yaml", "namespace: app.tools\nentries: [\n")
    code, out, _ = run(capsys, "lint", "--app", str(app))
    assert code == 1 and f"{os.path.relpath(app / 'tools' / 'bad.yaml')}:" in out and "malformed YAML" in out


def test_registry_schema_prints_json(capsys):
    code, out, _ = run(capsys, "registry", "schema", "agent")
    assert code == 0 and json.loads(out)["properties"]["kind"] == {"const": "agent"}
    code, out, _ = run(capsys, "registry", "schema")
    assert code == 0 and "security.policy" in out
    code, _, err = run(capsys, "registry", "schema", "nope")
    assert code == 1 and err.startswith("wippy: error: unknown kind 'nope'")


def test_registry_commands_against_a_store(app, store_url, capsys):
    common = ["--app", str(app), "--store", store_url]
    code, out, _ = run(capsys, "registry", "list", *common)
    assert code == 0 and "app.tools:weather" in out and "unsaved" in out
    code, out, _ = run(capsys, "registry", "list", "app.models", "--kind", "llm.model", *common)
    assert "app.models:default" in out and "app.tools:weather" not in out

    code, out, _ = run(capsys, "registry", "rollback", "1", *common)  # loads (version 1), then nothing to roll back
    assert code == 0 and "nothing to do" in out
    (app / "tools" / "weather.lua").write_text("return { handler = function() return 2 end }\n")
    code, out, _ = run(capsys, "registry", "rollback", "1", *common)  # load writes v2, rollback writes v3
    assert code == 0 and "rolled back to version 1 as version 3" in out

    code, out, _ = run(capsys, "registry", "show", "app.tools:weather", *common)
    assert code == 0 and "return {city = args.city" in out and "# runtime entry at registry version 3" in out
    code, out, _ = run(capsys, "registry", "history", *common)
    assert code == 0 and "rollback 1" in out and "update app.tools:weather" in out
    code, out, _ = run(capsys, "audit", *common)
    assert code == 0 and "registry.write" in out and "app.tools:weather" in out

    code, _, err = run(capsys, "registry", "show", "app.tools:nope", *common)
    assert code == 1 and err.startswith("wippy: error: no entry 'app.tools:nope'; in that namespace: app.tools:weather")
    code, _, err = run(capsys, "registry", "rollback", "99", *common)
    assert code == 1 and "registry version 99 does not exist; versions are 1..3" in err


def test_default_store_is_under_the_app(app, capsys):
    code, _, _ = run(capsys, "registry", "rollback", "1", "--app", str(app))
    assert code == 0 and (app / ".wippy" / "state.db").exists()


def test_the_repository_default_app_lints_clean(capsys):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code, out, err = run(capsys, "lint", "--app", root)
    assert code == 0, out


def test_registry_and_audit_print_json_with_json(app, store_url, capsys):
    common = ["--app", str(app), "--store", store_url]
    assert run(capsys, "registry", "rollback", "1", *common)[0] == 0  # stores v1 from the files
    (app / "tools" / "weather.lua").write_text("return { handler = function() return 2 end }\n")
    assert run(capsys, "registry", "rollback", "1", *common)[0] == 0  # v2 the edit, v3 the rollback
    code, out, _ = run(capsys, "registry", "list", "app.tools", "--json", *common)
    doc = json.loads(out)
    assert code == 0 and doc["version"] >= 1
    [weather] = [e for e in doc["entries"] if e["id"] == "app.tools:weather"]
    assert weather["kind"] == "function.lua" and weather["description"] == "Current weather for a city"
    code, out, _ = run(capsys, "registry", "show", "app.tools:weather", "--json", *common)
    doc = json.loads(out)
    assert doc["entry"]["id"] == "app.tools:weather" and doc["entry"]["kind"] == "function.lua"
    assert doc["entry"]["method"] == "handler" and doc["origin"] in ("file", "runtime")
    code, out, _ = run(capsys, "registry", "history", "--limit", "2", "--json", *common)
    versions = json.loads(out)
    assert len(versions) == 2 and versions[0]["version"] > versions[1]["version"]
    assert {"version", "created_at", "author", "reason", "changes"} <= set(versions[0])
    assert "rollback 1" in versions[0]["reason"] and versions[0]["changes"][0]["id"] == "app.tools:weather"
    code, out, _ = run(capsys, "audit", "--json", *common)
    records = json.loads(out)
    assert records and {"at", "actor", "action", "resource", "decision", "details"} <= set(records[0])
    assert any(r["action"] == "registry.write" and r["resource"] == "app.tools:weather" for r in records)


def test_registry_list_refuses_an_unknown_kind_naming_the_known_ones(app, capsys):
    code, _, err = run(capsys, "registry", "list", "--kind", "functon.lua", "--app", str(app))
    assert code == 1 and "unknown kind 'functon.lua' for --kind; known kinds:" in err and "function.lua" in err
