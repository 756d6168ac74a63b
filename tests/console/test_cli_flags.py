"""The CLI contract (SPEC §9): common flags anywhere, --version, choices named in one line."""

from __future__ import annotations

import argparse

import pytest

from wippy_agents import cli

# (the command's words, where a flag may go besides the very front and the very end)
COMMANDS = [
    ["run"],
    ["lint"],
    ["console", "app.agents:a"],
    ["call", "app.tools:t", "{}"],
    ["agent", "run", "app.agents:a", "hi"],
    ["registry", "list"],
    ["registry", "show", "app.tools:t"],
    ["tasks", "list"],
    ["tasks", "show", "T1"],
    ["tasks", "resume", "T1"],
    ["audit"],
]
# flag words -> (attribute, the value the handler must see)
FLAGS = {
    "app": (["--app", "/some/dir"], "app", "/some/dir"),
    "store": (["--store", "postgresql://u@h/db"], "store", "postgresql://u@h/db"),
    "node": (["--node", "b"], "node", "b"),
    "log-level": (["--log-level", "debug"], "log_level", "DEBUG"),
    "log-format": (["--log-format", "json"], "log_format", "json"),
    "debug": (["--debug"], "debug", True),
}


def _positions(command: list[str], flag: list[str]) -> dict[str, list[str]]:
    out = {"before": [*flag, *command], "after": [*command, *flag]}
    if command[0] in ("agent", "registry", "tasks"):  # between the group and its action
        out["between"] = [command[0], *flag, *command[1:]]
    return out


@pytest.fixture
def seen(monkeypatch):
    """Replace every handler by one that records the namespace it was called with."""
    calls: list[argparse.Namespace] = []

    def resolve(handler: str):
        def record(args: argparse.Namespace) -> int:
            calls.append(args)
            return 0
        return record

    monkeypatch.setattr(cli, "_resolve", resolve)
    return calls


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize("flag", list(FLAGS))
def test_a_common_flag_means_the_same_before_or_after_the_command(seen, command, flag):
    words, attr, value = FLAGS[flag]
    for where, argv in _positions(command, words).items():
        assert cli.main(argv) == 0, argv
        args = seen.pop()
        assert getattr(args, attr) == value, (where, argv)
        # the other common flags keep their defaults, not a value a subparser put back
        for other, default in cli.COMMON_DEFAULTS.items():
            if other != attr:
                assert getattr(args, other) == default, (where, argv, other)


def test_all_common_flags_at_once_split_around_the_command(seen):
    assert cli.main(["--store", "postgresql://u@h/db", "--node", "b", "run", "--app", "x", "--debug"]) == 0
    args = seen.pop()
    assert (args.store, args.node, args.app, args.debug) == ("postgresql://u@h/db", "b", "x", True)


def test_the_last_of_a_flag_given_twice_wins(seen):
    assert cli.main(["--node", "a", "tasks", "--node", "b", "list", "--node", "c"]) == 0
    assert seen.pop().node == "c"


def test_wippy_app_dir_lint_lints_that_dir(tmp_path, monkeypatch, capsys):
    app = tmp_path / "app"
    app.mkdir()
    (app / "tools").mkdir()
    (app / "tools" / "bad.yaml").write_text("namespace: app\nentries:\n  - {name: x, kind: functon.lua, source: 'return {}'}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli.main(["--app", str(app), "lint"]) == 1
    assert "unknown kind 'functon.lua'" in capsys.readouterr().out
    assert cli.main(["lint"]) == 0  # the empty current directory is clean: the flag above did count


def test_a_store_given_before_the_command_is_the_one_used(tmp_path, capsys):
    app = tmp_path / "app"
    app.mkdir()
    db = tmp_path / "elsewhere.db"
    assert cli.main(["--app", str(app), "--store", f"sqlite:///{db}", "tasks", "list"]) == 0
    assert db.exists() and not (app / ".wippy").exists()


def test_version_prints_the_package_version(capsys):
    from importlib.metadata import version

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"wippy {version('wippy-agents')}"


@pytest.mark.parametrize("argv, allowed", [
    (["lint", "--log-level", "bogus"], "'DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'"),
    (["--log-level", "bogus", "lint"], "'DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'"),
    (["run", "--log-format", "xml"], "'text', 'json'"),
    (["tasks", "list", "--status", "bogus"], "'pending', 'running', 'succeeded', 'failed', 'cancelled', 'stranded'"),
])
def test_a_value_outside_its_choices_is_one_line_naming_the_allowed_ones(argv, allowed, capsys):
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert "invalid choice" in err and allowed in err and "Traceback" not in err


@pytest.mark.parametrize("argv, words", [
    (["registry", "history", "--limit", "0"], "not a positive number"),
    (["audit", "--limit", "many"], "'many' is not a whole number"),
    (["registry", "rollback", "x"], "'x' is not a whole number"),
    (["tasks", "show"], "the following arguments are required: ID"),
    (["tasks"], "the following arguments are required: ACTION"),
    (["nope"], "invalid choice: 'nope'"),
    (["tasks", "resume", "T", "--retry", "--skip"], "not allowed with argument"),
])
def test_a_usage_error_is_one_line_with_exit_code_2(argv, words, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and words in err, err


def test_log_levels_are_accepted_in_any_case(seen):
    assert cli.main(["run", "--log-level", "Warning"]) == 0
    assert seen.pop().log_level == "WARNING"


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _commands(sub, (*path, name))


def test_every_command_has_help_an_example_and_described_positionals(capsys):
    commands = dict(_commands(cli.build_parser()))
    assert {("run",), ("tasks", "show"), ("registry", "history"), ("agent", "run"), ("audit",)} <= set(commands)
    for path, sub in commands.items():
        assert cli.main([*path, "--help"]) == 0
        out = capsys.readouterr().out
        example = out.split("example:\n", 1)
        assert len(example) == 2, f"`wippy {' '.join(path)} --help` has no example"
        assert example[1].strip().startswith(f"wippy {' '.join(path)}"), (path, example[1])
        for action in sub._actions:
            if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"positional {action.dest!r} of `wippy {' '.join(path)}` has no help"
        assert "--app DIR" in out and "--store URL" in out and "--node NAME" in out


def test_top_level_help_lists_the_commands_and_examples(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--version" in out
    for name in ("run", "console", "demo", "agent", "call", "lint", "registry", "tasks", "audit"):
        assert f"    {name}" in out


def test_a_real_node_started_with_flags_before_run_uses_that_store_and_name(tmp_path, pg_url):
    import subprocess
    import sys
    import threading

    app = tmp_path / "app"
    (app / "tools").mkdir(parents=True)
    (app / "tools" / "t.yaml").write_text("namespace: app.tools\nentries:\n"
                                          "  - {name: one, kind: function.lua, source: 'return {handler = function() return 1 end}'}\n")
    proc = subprocess.Popen([sys.executable, "-m", "wippy_agents.cli", "--store", pg_url, "--node", "b",
                             "--app", str(app), "run"], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(60, proc.kill)  # a node that never logs cannot hang the suite
    watchdog.start()
    try:
        seen = []
        for line in proc.stderr:  # ends when the process does
            seen.append(line)
            if "running" in line:
                break
        assert any("node b running" in line for line in seen), seen
        assert not (app / ".wippy").exists()  # not the default SQLite store under the app
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        watchdog.cancel()
        proc.stderr.close()
    assert proc.returncode == 0
