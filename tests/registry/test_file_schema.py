"""The entry-file JSON Schema (for editors) and ``wippy lint`` agree: every shipped
and test app validates, and each bad input is refused by both."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from wippy_agents.cli import main
from wippy_agents.registry import kinds

from .conftest import AGENT_YAML, TOOL_YAML, write

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = kinds.entry_file_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator, text: str) -> list[str]:
    return [e.message for doc in yaml.safe_load_all(text) if doc is not None for e in validator.iter_errors(doc)]


def test_the_committed_schema_file_is_the_generated_one(capsys):
    assert main(["registry", "schema", "--file"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == kinds.entry_file_schema()
    assert json.loads((ROOT / "schemas" / "entry-file.json").read_text()) == printed, (
        "run: wippy registry schema --file > schemas/entry-file.json")


def test_every_shipped_entry_file_validates_and_names_the_schema(validator):
    files = sorted(p for d in ("agents", "tools", "prompts") for p in (ROOT / d).glob("*.yaml"))
    assert files
    for path in files:
        text = path.read_text()
        assert text.startswith("# yaml-language-server: $schema=../schemas/entry-file.json\n"), path
        assert _errors(validator, text) == [], path


@pytest.mark.parametrize("text", [TOOL_YAML, AGENT_YAML, 'version: "1.0"\nnamespace: a.b\nentries: []\n'], ids=["tool", "agent", "version"])
def test_the_test_apps_validate(validator, text):
    assert _errors(validator, text) == []


_BAD = {
    "unknown-field": ("  - {name: t, kind: prompt, text: hi, txet: x}\n", "txet"),
    "misspelt-source": ("  - {name: t, kind: library.lua, sourc: 'return {}'}\n", "sourc"),
    "unknown-kind": ("  - {name: t, kind: functon.lua}\n", "functon.lua"),
    "wrong-type": ("  - {name: t, kind: function.lua, source: 'return {handler=function() end}', idempotent: sure}\n", "idempotent"),
    "missing-kind": ("  - {name: t}\n", "kind"),
    "bad-module": ("  - {name: t, kind: library.lua, source: 'return {}', modules: [nope]}\n", "nope"),
    "nested-unknown": ("  - {name: t, kind: library.lua, source: 'return {}', limits: {memroy: 1}}\n", "memroy"),
}


@pytest.mark.parametrize("name", sorted(_BAD))
def test_lint_and_the_file_schema_refuse_the_same_entry(validator, app, capsys, name):
    entry, word = _BAD[name]
    text = "namespace: app.bad\nentries:\n" + entry
    assert _errors(validator, text), "the editor schema accepts it"
    write(app / "tools" / "bad.yaml", text)
    code = main(["lint", "--app", str(app)])
    out = capsys.readouterr().out
    assert code == 1 and word in out


@pytest.mark.parametrize("text, word", [
    ("- a\n- b\n", "top level"),
    ("entries: []\n", "missing namespace"),
    ('version: "2"\nnamespace: a.b\nentries: []\n', "version"),
    ("namespace: a.b\nentriez: []\n", "entriez"),
    ("namespace: 'bad ns'\nentries: []\n", "namespace"),
], ids=["list", "no-namespace", "version", "doc-key", "namespace-shape"])
def test_lint_and_the_file_schema_refuse_the_same_document(validator, app, capsys, text, word):
    assert _errors(validator, text), "the editor schema accepts it"
    write(app / "tools" / "bad.yaml", text)
    code = main(["lint", "--app", str(app)])
    out = capsys.readouterr().out
    assert code == 1 and word in out
