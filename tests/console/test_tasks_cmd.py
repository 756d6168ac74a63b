"""``wippy tasks list|show|resume|cancel`` on a real store."""

from __future__ import annotations

import argparse
import json

import pytest

from wippy_agents.app import App
from wippy_agents.cli import main
from wippy_agents.errors import UsageError
from wippy_agents.console import tasks_cmd
from wippy_agents.agents.session import turn_task_id

from .apps import write_app


def args(app, store, **kw):
    return argparse.Namespace(app=str(app), store=store, node=None, **kw)


@pytest.fixture
def session_app(tmp_path):
    """An app whose store holds a parked console session with one turn that called a tool."""
    path = write_app(tmp_path / "app", [
        {"text": "Looking.", "tool_calls": [{"name": "weather", "arguments": {"city": "Porto"}}]},
        {"text": "Sunny in Porto."},
    ])
    store = f"sqlite:///{tmp_path / 'state.db'}"
    import asyncio

    async def setup():
        app = await App.open(path, store=store, claim_interval=0)
        try:
            session = await app.sessions.open()
            await session.send("weather in Porto?")
            await session.close()
            return session.id
        finally:
            await app.close()

    return path, store, asyncio.run(setup())


def test_show_prints_the_journal_readably(session_app, capsys):
    path, store, sid = session_app
    assert tasks_cmd.show(args(path, store, id=turn_task_id(sid, 1))) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "agent · app.agents:assistant" in out and "succeeded" in out
    assert "Looking. → weather(" in out and "tool:weather" in out and "Sunny in Porto." in out
    assert "Porto" in out and "sunny" in out  # the tool's result


def test_show_of_a_session_lists_its_turns_and_child_tasks(session_app, capsys):
    path, store, sid = session_app
    assert tasks_cmd.show(args(path, store, id=sid)) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "console.session" in out and "stranded" in out and "wippy console --resume" in out
    assert "turn:1" in out and "'weather in Porto?' → Sunny in Porto." in out
    assert turn_task_id(sid, 1) in out  # started by this task


def test_list_and_cancel(session_app, capsys):
    path, store, sid = session_app
    assert tasks_cmd.list_tasks(args(path, store, status="stranded")) == 0
    listed = capsys.readouterr().out
    assert sid in listed and turn_task_id(sid, 1) not in listed and "idle session" in listed
    assert tasks_cmd.cancel(args(path, store, id=sid)) == 0
    assert f"task {sid} is cancelled" in capsys.readouterr().out


def test_resume_refuses_a_console_session_with_a_hint(session_app):
    path, store, sid = session_app
    with pytest.raises(UsageError, match=f"wippy console --resume {sid}"):
        tasks_cmd.resume(args(path, store, id=sid, retry=False, skip=False))


def test_resume_of_a_finished_task_is_one_line_on_stderr(session_app, capsys):
    path, store, sid = session_app
    code = main(["tasks", "resume", turn_task_id(sid, 1), "--app", str(path), "--store", store])
    err = capsys.readouterr().err
    assert code == 1 and "already succeeded" in err and len(err.strip().splitlines()) == 1


def test_show_of_an_unknown_task_says_so(session_app, capsys):
    path, store, _ = session_app
    assert main(["tasks", "show", "nope", "--app", str(path), "--store", store]) == 1
    assert "no task with id 'nope'" in capsys.readouterr().err


def test_list_prints_json_with_json(session_app, capsys):
    path, store, sid = session_app
    assert main(["tasks", "list", "--json", "--app", str(path), "--store", store]) == 0
    tasks = {t["id"]: t for t in json.loads(capsys.readouterr().out)}
    assert tasks[sid]["status"] == "stranded" and tasks[sid]["kind"] == "console.session"
    assert tasks[turn_task_id(sid, 1)]["parent_id"] == sid and tasks[turn_task_id(sid, 1)]["status"] == "succeeded"
    assert main(["tasks", "list", "--json", "--status", "succeeded", "--limit", "1", "--app", str(path),
                 "--store", store]) == 0
    [only] = json.loads(capsys.readouterr().out)
    assert only["status"] == "succeeded"
