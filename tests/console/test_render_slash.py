"""Rendering and slash-command parsing, without a terminal."""

from __future__ import annotations

import asyncio
import io
import threading

import pytest
from rich.console import Console

from wippy_agents.console.approvals import ApprovalDesk, parse_answer
from wippy_agents.console.render import TurnView, approval_view, short_json, tail_lines, tool_panel
from wippy_agents.console.slash import COMMANDS, SlashError, changes_summary, parse, process_tree, run_command
from wippy_agents.llm import Usage
from wippy_agents.runtime.messages import ProcessInfo
from wippy_agents.security import ApprovalRequest

ISSUE_COMMANDS = {"help", "agents", "use", "tools", "registry", "show", "history", "rollback", "tasks", "resume",
                  "ps", "cost", "clear", "quit", "model", "compact", "editor"}


def render(renderable, width: int = 100) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def recording_console() -> Console:
    return Console(width=100, record=True, color_system=None, file=io.StringIO())


# -- parsing ----------------------------------------------------------------------

def test_every_command_of_the_issue_exists():
    assert set(COMMANDS) == ISSUE_COMMANDS


@pytest.mark.parametrize("line, expected", [
    ("/help", ("help", [])),
    ("  /SHOW app.tools:x ", ("show", ["app.tools:x"])),
    ("/registry 'app.*'", ("registry", ["app.*"])),
    ("/resume abc retry", ("resume", ["abc", "retry"])),
])
def test_parse_splits_a_command_and_its_arguments(line, expected):
    assert parse(line) == expected


@pytest.mark.parametrize("line, hint", [
    ("/bogus", "unknown command /bogus"),
    ("/hel", "did you mean /help"),
    ("/show", "usage: /show ID"),
    ("/use a b", "usage: /use AGENT"),
    ("/quit now", "usage: /quit"),
    ("/show 'open", "cannot read"),
    ("/", "commands start with /"),
])
def test_bad_commands_get_a_one_line_hint(line, hint):
    with pytest.raises(SlashError) as err:
        parse(line)
    assert hint in str(err.value) and "\n" not in str(err.value)


# -- rendering --------------------------------------------------------------------

def test_a_tool_panel_shows_the_call_compactly():
    long = {"text": "x" * 5000}
    out = render(tool_panel({"name": "weather", "arguments": {"city": "Lisbon"}, "result": long, "seconds": 0.012}))
    assert "weather" in out and "12 ms" in out and "city=Lisbon" in out
    assert len(out) < 1200  # a huge result is cut, the answer is not drowned
    bad = render(tool_panel({"name": "weather", "arguments": {}, "error": "city is required", "seconds": 2.5}))
    assert "✗" in bad and "city is required" in bad and "2.5 s" in bad


def test_short_json_cuts_with_an_ellipsis():
    assert short_json({"a": 1}) == '{"a": 1}'
    assert short_json("y" * 500, 10) == "y" * 9 + "…"


def test_the_turn_view_prints_replies_and_tools_and_nests_delegates():
    console = recording_console()
    view = TurnView(console, model="gpt-x", session_usage=Usage(input_tokens=100, output_tokens=50, cost_usd=0.5),
                    agent="app.agents:a")
    view.on_event({"type": "text", "text": "Let me ", "task_id": "s.1", "depth": 0})
    view.on_event({"type": "text", "text": "check.", "task_id": "s.1", "depth": 0})
    live = render(view)
    assert "Let me check." in live and "gpt-x" in live and "streaming" in live
    usage = {"input_tokens": 10, "output_tokens": 5, "cost_usd": 0.25}
    view.on_event({"type": "reply", "reply": {"text": "Let me check.", "usage": usage}, "task_id": "s.1", "depth": 0})
    view.on_event({"type": "tool_start", "id": "c1", "name": "ask_coder", "arguments": {"task": "lua"},
                   "delegate_task": "s.1/1.c1", "task_id": "s.1", "depth": 0})
    assert "running ask_coder" in render(view)
    view.on_event({"type": "reply", "reply": {"text": "Here is **Lua**.", "usage": {}}, "task_id": "s.1/1.c1",
                   "depth": 1})
    # the delegate's own call has the same call id as its parent's: they must not be confused
    view.on_event({"type": "tool_start", "id": "c1", "name": "weather", "arguments": {"city": "Oslo"},
                   "task_id": "s.1/1.c1", "depth": 1})
    view.on_event({"type": "tool_end", "id": "c1", "name": "weather", "result": {"sky": "sunny"}, "seconds": 0.01,
                   "task_id": "s.1/1.c1", "depth": 1})
    view.on_event({"type": "tool_end", "id": "c1", "name": "ask_coder", "result": "Here is Lua.", "seconds": 0.5,
                   "task_id": "s.1", "depth": 0})
    printed = console.export_text()
    assert "Let me check." in printed and "↳ ask_coder" in printed and "Here is Lua." in printed
    assert printed.count("↳ ask_coder") == 1  # one header per delegated run
    assert "  ╭─ ✓ weather" in printed and "city=Oslo" in printed  # the delegate's tool, indented
    assert "task=lua" in printed  # the panel got the arguments from the start event
    status = render(view)
    assert "turn 15 tok $0.2500" in status and "session 165 tok $0.75" in status
    assert view.printed_text


def test_an_approval_shows_the_schema_the_highlighted_source_and_the_examples():
    entry = {"id": "app.review:slug", "kind": "function.lua", "meta": {"description": "Slug of a text"},
             "data": {"source": "return {handler = function(a)\n  return a.text\nend}", "method": "handler",
                      "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
                      "examples": [{"input": {"text": "A b"}, "output": "a-b"}]}}
    request = ApprovalRequest(actor="agent:app.agents:a", action="registry.write", resource="app.review:slug",
                              rule="app.security:open rule 2", details={"op": "create", "id": "app.review:slug",
                                                                         "entry": entry, "before": None})
    out = render(approval_view(request))
    assert "agent:app.agents:a" in out and "registry.write" in out and "app.security:open rule 2" in out
    assert "create app.review:slug" in out and "Slug of a text" in out
    assert "input_schema" in out and '"text"' in out
    assert "1 return {handler = function(a)" in out  # line-numbered source
    assert '{"text": "A b"}' in out and "a-b" in out and "examples (not run)" in out
    results = [{"input": {"text": "A b"}, "expected": "a-b", "got": "A b", "ok": False},
               {"input": {"text": "x"}, "expected": "x", "error": "attempt to index a nil value", "ok": False}]
    request = ApprovalRequest(actor="agent:a", action="registry.write", resource="app.review:slug", rule="r",
                              details={"op": "create", "entry": entry, "example_results": results})
    out = render(approval_view(request), width=120)
    assert "run just now" in out and "✗" in out and "attempt to index a nil value" in out


def test_an_approval_of_a_call_shows_its_details():
    request = ApprovalRequest(actor="agent:x", action="tool.call", resource="app.tools:pay", rule="r",
                              details={"amount": 12})
    out = render(approval_view(request))
    assert "tool.call" in out and '"amount": 12' in out


def test_the_process_tree_nests_children_under_parents():
    def info(pid, parent=None, name=None, body="fn"):
        return ProcessInfo(pid=pid, name=name, parent=parent, body=body, status="waiting", queued=0, links=(),
                           monitored_by=0, trap_exit=False)

    tree = process_tree([info("<n.1>", name="sup", body="Supervisor"), info("<n.2>", "<n.1>", name="worker"),
                         info("<n.3>", "<n.9>")])
    out = render(tree)
    lines = out.splitlines()
    assert "3 processes" in lines[0]
    sup = next(i for i, line in enumerate(lines) if "sup" in line)
    worker = next(i for i, line in enumerate(lines) if "worker" in line)
    assert worker > sup and lines[worker].index("<n.2>") > lines[sup].index("<n.1>")  # indented under it
    assert any("<n.3>" in line for line in lines)  # an orphan (parent gone) is shown at the top level


# -- approvals desk ---------------------------------------------------------------

@pytest.mark.parametrize("text, answer", [("y", True), ("YES", True), ("", False), ("n", False), ("maybe", None)])
def test_parse_answer(text, answer):
    assert parse_answer(text) is answer


async def test_the_desk_carries_a_request_to_the_terminal_thread_and_the_answer_back():
    desk = ApprovalDesk()
    asked: list[str] = []
    served = threading.Event()

    def terminal():
        while not desk.serve(lambda req: asked.append(req) or True, timeout=0.05):
            pass
        served.set()

    thread = threading.Thread(target=terminal)
    thread.start()
    assert await asyncio.wait_for(desk.approver("req-1"), 5) is True
    thread.join(5)
    assert asked == ["req-1"] and served.is_set()


async def test_closing_the_desk_rejects_waiting_and_later_requests():
    desk = ApprovalDesk()
    waiting = asyncio.ensure_future(desk.approver("req"))
    while not desk.pending():
        await asyncio.sleep(0)
    desk.close()
    assert await asyncio.wait_for(waiting, 5) is False
    assert await desk.approver("later") is False


def test_a_session_open_in_another_live_console_is_refused(tmp_path):
    import os
    import subprocess
    import sys

    from wippy_agents.console.terminal import lock_session
    from wippy_agents.errors import UsageError

    release = lock_session(tmp_path, "s1")
    assert (tmp_path / ".wippy" / "sessions" / "s1.pid").read_text() == str(os.getpid())
    lock_session(tmp_path, "s1")  # this process again: fine
    release()
    assert not (tmp_path / ".wippy" / "sessions" / "s1.pid").exists()
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        (tmp_path / ".wippy" / "sessions" / "s2.pid").write_text(str(other.pid))
        with pytest.raises(UsageError, match=f"open in another console \\(process {other.pid}\\)"):
            lock_session(tmp_path, "s2")
    finally:
        other.communicate(b"")
    lock_session(tmp_path, "s2")()  # its process is gone: the stale lock is taken over


def test_an_approval_of_an_update_shows_the_diff_against_the_live_entry():
    before = {"id": "app.prompts:p", "kind": "prompt", "meta": {}, "data": {"text": "Be brief.\nUse lists."}}
    after = {"id": "app.prompts:p", "kind": "prompt", "meta": {}, "data": {"text": "Be brief.\nUse tables."}}
    request = ApprovalRequest(actor="agent:a", action="registry.write", resource="app.prompts:p", rule="r",
                              details={"op": "update", "entry": after, "before": before})
    out = render(approval_view(request))
    assert "update app.prompts:p" in out and "the change against the live entry" in out
    assert "-  Use lists." in out and "+  Use tables." in out and "-  Be brief." not in out


def test_a_version_s_changes_are_summarised_by_operation():
    changes = [{"op": "create", "id": f"app.x:e{i}"} for i in range(6)] + [{"op": "delete", "id": "app.y:old"}]
    assert changes_summary(changes) == "create: app.x:e0, app.x:e1, app.x:e2, app.x:e3 +2 more; delete: app.y:old"


def test_the_streaming_tail_keeps_the_newest_lines_that_fit():
    text = "\n".join(f"line {i}" for i in range(100))
    assert tail_lines(text, height=3, width=80) == "line 97\nline 98\nline 99"
    wrapped = "short\n" + "x" * 200  # 200 characters wrap to 3 rows at width 80
    assert tail_lines(wrapped, height=3, width=80) == "x" * 200
    assert tail_lines("y" * 1000, height=2, width=80) == "y" * 1000  # the newest line is always kept


def test_the_task_of_a_request_is_read_from_the_actor_label():
    from wippy_agents.console.approvals import request_task

    def req(actor):
        return ApprovalRequest(actor=actor, action="a", resource="r", rule="")

    assert request_task(req("agent:app.agents:coder/s1.2/1.call_1_1")) == "s1.2/1.call_1_1"
    assert request_task(req("agent:app.agents:a")) is None
    assert request_task(req("cli:ada/t1 (restricted)")) == "t1"


async def test_requests_of_a_cancelled_turn_are_rejected_and_others_kept():
    desk = ApprovalDesk()
    mine = asyncio.ensure_future(desk.approver(ApprovalRequest(actor="agent:a/s.1", action="x", resource="r",
                                                               rule="")))
    other = asyncio.ensure_future(desk.approver(ApprovalRequest(actor="agent:b/t.9", action="x", resource="r",
                                                                rule="")))
    while not desk.pending():
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    from wippy_agents.console.approvals import request_task

    assert desk.reject_where(lambda r: (request_task(r) or "").startswith("s.1")) == 1
    assert await asyncio.wait_for(mine, 5) is False
    assert desk.serve(lambda r: True) and await asyncio.wait_for(other, 5) is True


def test_the_completer_offers_commands_then_the_ids_a_command_takes():
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    from wippy_agents.console.prompt import SlashCompleter, context_bar

    ids = {"agents": ["app.agents:assistant", "app.agents:coder"], "models": ["app.models:m"]}
    completer = SlashCompleter(lambda: COMMANDS.keys(), lambda kind: ids.get(kind, []))

    def texts(line: str) -> list[str]:
        return [c.text for c in completer.get_completions(Document(line), CompleteEvent())]

    assert texts("/us") == ["/use"]
    assert texts("/use cod") == ["app.agents:coder"]  # a bare name completes to the full id
    assert texts("/model app.") == ["app.models:m"]
    assert texts("hello /us") == [] and texts("/use a b") == []
    assert context_bar(0, 1000, width=4) == "[░░░░] 0/1.0k 0%"
    assert context_bar(96_000, 128_000, width=4) == "[███░] 96.0k/128k 75%"


def test_editor_sends_what_was_written_and_nothing_when_the_file_is_empty(monkeypatch, tmp_path):
    from rich.console import Console

    sent: list[str] = []

    class FakeShell:
        console = Console(file=io.StringIO(), width=100)

        def run_turn(self, text):
            sent.append(text)

    monkeypatch.setenv("VISUAL", "sh -c 'printf \"line one\\nline two\\n\" > \"$1\"' sh")
    run_command(FakeShell(), "/editor")
    assert sent == ["line one\nline two"]
    monkeypatch.setenv("VISUAL", "true")
    run_command(FakeShell(), "/editor")
    assert sent == ["line one\nline two"]
