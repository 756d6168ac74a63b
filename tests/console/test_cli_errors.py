"""Errors from every command: one clear line on stderr, a non-zero exit, a traceback only with --debug (SPEC §9)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from wippy_agents import cli
from wippy_agents.store import open_store

TOOLS = {"namespace": "app.tools", "entries": [
    {"name": "add", "kind": "function.lua", "source": "return {handler = function(a) return a.a + a.b end}"},
    {"name": "slow", "kind": "workflow.lua", "modules": ["time"],
     "source": "return {handler = function(a) time.sleep('1500ms'); return 'woke' end}"},
]}


@pytest.fixture
def app(tmp_path):
    root = tmp_path / "app"
    (root / "src").mkdir(parents=True)
    (root / "wippy.yaml").write_text(yaml.safe_dump({"sources": ["src"]}))
    (root / "src" / "tools.yaml").write_text(yaml.safe_dump(TOOLS))
    return root


def one_line_error(capsys, argv, code=1) -> str:
    assert cli.main(argv) == code, argv
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wippy"), (argv, err)
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("command", [
    ["run"], ["lint"], ["call", "app.tools:add", "{}"], ["agent", "run", "app.agents:a", "hi"], ["console"],
    ["registry", "list"], ["registry", "show", "app.tools:add"], ["registry", "history"], ["registry", "rollback", "1"],
    ["tasks", "list"], ["tasks", "show", "T"], ["tasks", "resume", "T"], ["tasks", "cancel", "T"], ["audit"],
])
def test_a_missing_app_dir_is_one_line_for_every_command(tmp_path, capsys, command):
    line = one_line_error(capsys, [*command, "--app", str(tmp_path / "nowhere")])
    assert f"app {str(tmp_path / 'nowhere')!r} does not exist; pass --app DIR" in line


def test_call_with_an_argument_that_is_not_json(app, capsys):
    line = one_line_error(capsys, ["call", "app.tools:add", "{a: 1", "--app", str(app)])
    assert "wippy call app.tools:add: the argument is not valid JSON" in line


def test_call_with_a_task_id_on_a_plain_function_says_it_does_not_apply(app, capsys):
    line = one_line_error(capsys, ["call", "app.tools:add", '{"a": 1, "b": 2}', "--task-id", "x", "--app", str(app)])
    assert "--task-id applies to workflow.lua entries; 'app.tools:add' is a 'function.lua' entry" in line


def test_call_of_an_unknown_entry_and_a_failing_function(app, capsys):
    assert "entry 'app.tools:nope' not found" in one_line_error(capsys, ["call", "app.tools:nope", "--app", str(app)])
    assert "arithmetic on a nil value" in one_line_error(capsys, ["call", "app.tools:add", '{"a": 1}',
                                                                  "--app", str(app)])


def test_a_bad_store_url_and_an_unreachable_store(app, capsys):
    line = one_line_error(capsys, ["--store", "bogus://x", "tasks", "list", "--app", str(app)])
    assert "store 'bogus://x' is not a sqlite:/// or postgresql:// URL" in line
    line = one_line_error(capsys, ["tasks", "list", "--store", "postgresql://127.0.0.1:1/x", "--app", str(app)])
    assert "cannot connect to store postgresql://127.0.0.1:1/x" in line


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(app, capsys, monkeypatch):
    def broken(args):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(cli, "_resolve", lambda handler: broken)
    line = one_line_error(capsys, ["audit", "--app", str(app)])
    assert line == "wippy: error: RuntimeError: something nobody expected (run with --debug for the traceback)"
    with pytest.raises(RuntimeError, match="nobody expected"):
        cli.main(["--debug", "audit", "--app", str(app)])


def _wippy(*args, cwd, **kw):
    return subprocess.Popen([sys.executable, "-m", "wippy_agents.cli", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_rerunning_a_killed_call_with_its_task_id_resumes_the_workflow(app, tmp_path):
    first = _wippy("call", "app.tools:slow", "{}", "--task-id", "k1", "--app", str(app), cwd=tmp_path)

    async def sleeping() -> bool:  # the durable timer is journaled: the workflow is inside its sleep
        store = await open_store(f"sqlite:///{app / '.wippy' / 'state.db'}")
        try:
            return any(s.name == "time.sleep" for s in await store.journal_load("k1"))
        finally:
            await store.close()

    deadline = time.monotonic() + 30
    while not ((app / ".wippy" / "state.db").exists() and asyncio.run(sleeping())):
        assert first.poll() is None and time.monotonic() < deadline, "the first call never reached its sleep"
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    started = time.monotonic()
    again = _wippy("call", "app.tools:slow", "{}", "--task-id", "k1", "--app", str(app), cwd=tmp_path)
    out, err = again.communicate(timeout=30)
    assert (again.returncode, out.strip()) == (0, '"woke"'), err
    # it resumed at once instead of waiting out the dead process's lease (15 s)
    assert time.monotonic() - started < 12, f"took {time.monotonic() - started:.1f} s"


def test_a_reader_that_leaves_early_ends_the_command_quietly(app, tmp_path):
    proc = _wippy("registry", "list", "--json", "--app", str(app), cwd=tmp_path)
    proc.stdout.close()  # like `| head -1` having left already: the first write finds no reader
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=30) == 141 and err == ""
