"""The prompt_toolkit console in a pty (issue 15): history with tool results, multi-line input and
bracketed paste, completion, the toolbar, /model, /compact, Ctrl-C keeping the rendered answer.

Requests go to a local OpenAI-compatible server on 127.0.0.1 (``fake_openai.py``) under the real
openai client, so a test can read exactly what the console sent."""

from __future__ import annotations

import re

import pytest

from .fake_openai import FakeOpenAI
from .pty import PASTE_END, PASTE_START, ConsoleRun, make_app

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


def test_turn_two_sends_turn_ones_tool_call_its_result_and_interim_text(tmp_path, console):
    with FakeOpenAI([{"text": "Let me look.", "tool_calls": [{"name": "weather", "arguments": {"city": "Lisbon"}}]},
                     {"text": "Sunny in Lisbon."}, {"text": "It is 21 degrees."}]) as fake:
        app, store = make_app(tmp_path, [], base_url=fake.url)
        run = console(app, store)
        run.prompt()
        run.send("weather in Lisbon?")
        run.expect("Sunny in Lisbon")
        run.prompt()
        run.send("how warm?")
        run.expect("21 degrees")
        run.prompt()
        run.quit()
    messages = fake.requests[2]["messages"]
    roles = [m["role"] for m in messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"], roles
    call = messages[2]["tool_calls"][0]
    assert messages[2]["content"] == "Let me look." and call["function"]["name"] == "weather"
    assert messages[3]["tool_call_id"] == call["id"] and '"celsius": 21' in messages[3]["content"]


def test_multi_line_input_and_a_bracketed_paste_are_one_message_and_model_switches(tmp_path, console):
    with FakeOpenAI([{"text": "got two lines"}, {"text": "got the paste"}, {"text": "from b"}]) as fake:
        app, store = make_app(tmp_path, [], base_url=fake.url)
        run = console(app, store)
        run.prompt()
        run.child.send("line one\x1b\rline two\r")  # Esc-Enter inserts a newline, Enter sends
        run.expect("got two lines")
        run.prompt()
        run.child.send(f"{PASTE_START}pasted one\npasted two\n{PASTE_END}\r")
        run.expect("got the paste")
        run.prompt()
        run.send("/model app.models:remote2")
        run.expect("later turns use app.models:remote2")
        run.prompt()
        run.send("and now?")
        run.expect("from b")
        run.prompt()
        run.quit()
    users = [[m["content"] for m in r["messages"] if m["role"] == "user"][-1] for r in fake.requests]
    assert users[:2] == ["line one\nline two", "pasted one\npasted two"], users
    assert [r["model"] for r in fake.requests] == ["fake-a", "fake-a", "fake-b"]


def test_tab_completes_commands_and_ids_and_the_toolbar_shows_context_fill(tmp_path, console):
    app, store = make_app(tmp_path, [{"text": "hi"}], coder_script=[{"text": "coder here"}])
    run = console(app, store)
    shown = run.prompt()
    toolbar = run.expect(r"ctx \[[█░]+\] \d+/100k \d+% · session 0 tok \$0\.0000 · ready")
    assert "scripted-1 · ctx" in toolbar
    run.child.send("/us\t")
    run.expect("/use")
    run.child.send(" cod\t")
    run.expect("app.agents:coder")
    run.child.send("\r")
    assert "now talking to app.agents:coder" in " ".join(run.prompt("coder").split())
    run.quit()


def test_compact_writes_a_summary_step_shown_as_a_collapsed_note(tmp_path, console):
    app, store = make_app(tmp_path, [{"text": "Lisbon is sunny."}, {"text": "Porto is rainy."},
                                     {"text": "Asked about Lisbon (sunny) and Porto (rainy)."}])
    run = console(app, store)
    run.prompt()
    run.send("Lisbon?")
    run.expect("Lisbon is sunny")
    run.prompt()
    run.send("Porto?")
    run.expect("Porto is rainy")
    run.prompt()
    run.send("/compact")
    note = " ".join(run.expect(r"▸ summary of .*?\)").split()) + " ".join(run.prompt().split())
    assert re.search(r"▸ summary of \d+ earlier messages \([\d,]+ tok", note), note
    assert "Asked about Lisbon (sunny)" in note
    run.quit()


def test_ctrl_c_keeps_the_partial_answer_rendered_and_counts_the_prompt(tmp_path, console):
    slow = {"chunks": ["It is **very** loud ", *[f"w{i} " for i in range(400)]], "delay": 0.05}
    app, store = make_app(tmp_path, [slow, {"text": "still here"}])
    run = console(app, store)
    run.prompt()
    run.send("talk")
    run.expect("w3 ")
    run.child.sendintr()
    out = run.expect("turn cancelled", timeout=10) + run.prompt()
    after = out[out.rfind("It is"):]
    assert "It is very loud" in after and "**" not in after  # rendered as Markdown, not raw
    assert re.search(r"the prompt sent: [1-9][\d,]* tok", out)
    run.quit()
