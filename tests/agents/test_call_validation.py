"""`wippy call` of a tool checks its JSON against the tool's input_schema, with the message a model gets."""

from __future__ import annotations

from wippy_agents.cli import main

from .conftest import write_app

APP = """
namespace: app.tools
entries:
  - name: count
    kind: function.lua
    meta: {type: tool, description: "count chars"}
    input_schema: {type: object, properties: {text: {type: string}}, required: [text]}
    source: "return {handler = function(a) return #a.text end}"
"""


def test_wippy_call_of_a_tool_validates_its_arguments(tmp_path, capsys):
    app = str(write_app(tmp_path, APP))
    store = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["call", "app.tools:count", '{"txt": "a"}', "--app", app, "--store", store]) == 1
    err = capsys.readouterr().err
    assert ("invalid arguments for tool 'app.tools:count': argument 'text' is required but missing. "
            "Fix the arguments and call again.") in err
    assert "nil value" not in err and err.count("\n") == 1  # one line, and the Lua code never ran
    assert main(["call", "app.tools:count", '{"text": "abc"}', "--app", app, "--store", store]) == 0
    assert capsys.readouterr().out.strip() == "3"
