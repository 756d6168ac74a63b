"""``wippy console`` in a pseudo-terminal against the scripted model (SPEC §9, issue 8)."""

from __future__ import annotations

import asyncio
import re
import signal

import pytest

from wippy_agents.store import open_store

from .apps import create_tool_call
from .pty import ConsoleRun, make_app, plain

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def console(tmp_path):
    runs: list[ConsoleRun] = []

    def start(app, store, *args):
        run = ConsoleRun(app, store, *args, home=tmp_path)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.close()


def audit(store_url: str) -> list:
    async def read():
        store = await open_store(store_url)
        try:
            return await store.audit_list(limit=100)
        finally:
            await store.close()

    return asyncio.run(read())


def test_a_conversation_streams_the_answer_and_shows_the_tool_call(tmp_path, console):
    app, store = make_app(tmp_path, [
        {"chunks": ["Let me ", "look."], "tool_calls": [{"name": "weather", "arguments": {"city": "Lisbon"}}]},
        {"chunks": ["It is **sunny** ", "in Lisbon, ", "21 degrees."]},
    ])
    run = console(app, store)
    header = run.prompt()
    assert "new session" in header and "app.agents:assistant" in header
    run.send("weather in Lisbon?")
    panel = run.expect("21 degrees")
    assert "weather" in panel and "city=Lisbon" in panel and '"sky": "sunny"' in panel  # the compact panel
    run.prompt()
    status = run.expect(r"· ready")  # the toolbar pinned under the prompt
    assert "scripted-1" in status and "turn" in status and "session" in status and "tok" in status
    run.quit()


def test_an_approval_is_asked_shown_and_answered_both_ways_and_audited(tmp_path, console):
    call = create_tool_call("app.review:slugify")
    again = {**call, "arguments": {**call["arguments"], "description": "Slug of a text, lower case"}}
    app, store = make_app(tmp_path, [
        {"text": "Writing it.", "tool_calls": [call]},
        {"text": "Trying again.", "tool_calls": [call]},
        {"text": "Once more.", "tool_calls": [again]},  # other arguments: three equal calls are a loop
        {"text": "The tool is live."},
    ])
    run = console(app, store)
    run.prompt()
    run.send("make a slug tool")
    shown = run.expect(r"approve\? \[y/N\] ")
    assert "app.review:slugify" in shown and "registry.write" in shown
    assert "string.gsub" in shown and "input_schema" in shown  # the source and the schema
    examples = shown[shown.find("examples"):]
    assert "run just now" in examples and "✓" in examples and "hello-world" in examples, shown[-2500:]
    run.send("n")
    rejected = run.expect(r"approve\? \[y/N\] ")  # the model tries again after reading the refusal
    assert "rejected" in rejected and "a person rejected it" in rejected
    run.child.sendintr()  # Ctrl-C at the question is a no, and the turn goes on
    rejected = run.expect(r"approve\? \[y/N\] ")
    assert "rejected" in rejected and "Once more." in rejected
    run.send("y")
    done = run.expect("The tool is live")
    assert "approved" in done and '"version"' in done
    run.prompt()
    run.quit()
    decisions = [(r.action, r.resource, r.decision) for r in audit(store)]
    assert decisions.count(("registry.write", "app.review:slugify", "rejected")) == 2
    assert decisions.count(("registry.write", "app.review:slugify", "approved")) == 1


def test_ctrl_c_cancels_a_streaming_reply_and_the_console_stays(tmp_path, console):
    slow = {"chunks": [f"word{i} " for i in range(400)], "delay": 0.05}  # 20 s if nobody interrupts
    app, store = make_app(tmp_path, [slow, {"text": "still here"}])
    run = console(app, store)
    run.prompt()
    run.send("talk a lot")
    run.expect("word3 ")
    run.child.sendintr()
    cancelled = run.expect("turn cancelled", timeout=10)
    assert re.search(r"word2 word3 .*word\d+ …\s+turn cancelled", cancelled, re.S)  # the streamed text stays
    assert "word399" not in cancelled  # the stream was cut, not waited for
    run.prompt()
    run.send("/tasks")
    tasks = run.prompt()
    assert "cancelled" in tasks
    run.quit()


def test_resume_continues_the_conversation_and_the_line_history(tmp_path, console):
    app, store = make_app(tmp_path, [{"text": "first answer"}, {"text": "second answer"}])
    run = console(app, store)
    run.prompt()
    run.send("hello there")
    run.expect("first answer")
    run.prompt()
    sid = run.quit()

    again = console(app, store, "--resume", sid)
    shown = again.prompt()
    assert f"resumed session {sid}" in " ".join(shown.split())
    assert "hello there" in shown and "first answer" in shown  # the conversation so far
    again.child.send("\x1b[A")  # Up: the line typed in the last session
    again.child.send("\r")
    again.expect("second answer")  # the script goes on: the session continued, it did not restart
    again.prompt()
    assert again.quit() == sid


def test_every_slash_command_answers_and_bad_ones_get_a_hint(tmp_path, console):
    app, store = make_app(tmp_path, [{"text": "hi"}], coder_script=[{"text": "coder here"}])
    first = console(app, store)
    first.prompt()
    other = first.quit()

    run = console(app, store)
    run.prompt()
    checks = [
        ("/help", ["/registry [PATTERN]", "/rollback VERSION", "/quit"]),
        ("/agents", ["app.agents:assistant", "app.agents:coder", "Writes Lua"]),
        ("/tools", ["weather", "app.tools:weather", "ask_coder", "create_tool"]),
        ("/registry app.tools", ["app.tools:weather", "function.lua"]),
        ("/show app.tools:weather", ["kind: function.lua", "sunny"]),
        ("/history", ["registry history"]),
        ("/rollback 1", ["version 1"]),
        ("/tasks", [other, "console.session", "stranded"]),
        ("/ps", ["processes", "task:"]),
        ("/cost", ["total"]),
        ("/bogus", ["unknown command /bogus"]),
        ("/show", ["usage: /show ID"]),
        ("/rollback x", ["usage: /rollback VERSION"]),
        ("/use nobody", ["no agent 'nobody'"]),
        ("/show app.tools:nothing", ["no entry 'app.tools:nothing'"]),
    ]
    for line, wanted in checks:
        run.send(line)
        out = " ".join(run.prompt().split())
        for text in wanted:
            assert text in out, f"{line}: {text!r} not in {out!r}"
    run.send("/use coder")
    assert "now talking to app.agents:coder" in " ".join(run.prompt("coder").split())
    run.send("who are you?")
    run.expect("coder here")
    run.prompt("coder")
    run.send("/clear")
    assert "fresh context" in run.prompt("coder")
    run.send(f"/resume {other}")
    assert f"resumed session {other}" in " ".join(run.prompt().split())
    run.send("/quit")
    out = plain(run.expect(r"--resume (\w+)"))
    assert other in out


def test_a_crash_mid_turn_loses_nothing_resume_finishes_the_turn(tmp_path, console):
    slow = {"chunks": [f"part{i} " for i in range(40)] + ["done."], "delay": 0.05}
    app, store = make_app(tmp_path, [{"text": "first answer"}, slow])
    run = console(app, store)
    run.prompt()
    run.send("one")
    run.expect("first answer")
    run.prompt()
    run.send("two")
    run.expect("part2 ")
    sid = re.search(r"new session (\w+)", plain(run.seen)).group(1)
    run.child.kill(signal.SIGKILL)  # no goodbye: the session task and the turn's task stay 'running'
    run.child.close()

    again = console(app, store, "--resume", sid)
    shown = " ".join(again.expect("finishing the interrupted turn: two").split())
    assert "first answer" in shown
    again.expect("done.")  # the turn ran on from its journal
    again.prompt()
    again.send("/cost")
    cost = again.prompt()
    assert re.search(r"│ 2\s+│ app\.agents:assistant", cost)  # both turns are in the session
    assert again.quit() == sid
