"""Run limits: the budget refuses a call whose worst case would overshoot before it is sent; a step a
person skipped reaches the model as a note, not as ``null``."""

from __future__ import annotations

import asyncio

from wippy_agents.agents import python_tool
from wippy_agents.agents.loop import SKIPPED_NOTE
from wippy_agents.app import App

from .conftest import write_app
from .helpers import app_text, call, until


def svc(app):
    return app.agents


async def test_a_call_whose_worst_case_exceeds_the_budget_is_refused_before_it_is_sent(make_app):
    script = [{"tool_calls": [call("add", x=1, y=1)], "usage": {"input_tokens": 300, "output_tokens": 10}},
              {"text": "never sent"}]
    # 310 used; the next prompt + 200 max output tokens cannot fit in 500, so the second call is not made
    app = await make_app(app_text(script, agent={"budget": {"max_total_tokens": 500}},
                                  model={"max_output_tokens": 200}))
    result = await svc(app).run("app.agents:a", "x", timeout=30)
    assert result.stop_reason == "budget"
    assert "+ 200 max output" in result.detail and "310 used so far" in result.detail
    assert "budget of 500 tokens; it was not sent" in result.detail
    assert len(svc(app).provider_for("app.models:m").calls) == 1
    assert result.usage.total_tokens == 310  # never more than the budget


async def test_the_first_call_is_refused_when_even_its_worst_case_is_over_the_budget(make_app):
    app = await make_app(app_text([{"text": "never sent"}], agent={"budget": {"max_cost_usd": 0.001}},
                                  model={"max_output_tokens": 1000, "output_price": 10.0}))
    result = await svc(app).run("app.agents:a", "x", timeout=30)
    assert result.stop_reason == "budget" and "could cost up to $0.01" in result.detail
    assert svc(app).provider_for("app.models:m").calls == [] and result.turns == 0


GATE: dict = {"entered": None}


@python_tool("test.skip:charge", description="charges a card (not idempotent)", input_schema={"type": "object"})
async def charge(args, ctx):
    GATE["entered"].set()
    await asyncio.Event().wait()  # hangs until the run is interrupted


async def test_after_resume_skip_the_model_is_told_a_person_skipped_the_step(tmp_path):
    script = [{"tool_calls": [call("charge")]}, {"text": "I could not confirm the charge."}]
    path = write_app(tmp_path, app_text(script, agent={"tools": ["app.tools:*", "test.skip:charge"]}))
    store = f"sqlite:///{tmp_path / 's.db'}"
    GATE["entered"] = asyncio.Event()
    first = await App.open(path, store=store)
    try:
        await svc(first).start("app.agents:a", "charge it", task_id="skip-1")
        await asyncio.wait_for(GATE["entered"].wait(), 10)
        first.node.exit(first.node.whereis("task:skip-1"), "kill")  # dies mid-tool: the step never finishes
    finally:
        await first.close()
    async with await App.open(path, store=store) as second:
        await until(lambda: second.tasks.get("skip-1"), lambda t: t.status == "stranded")
        await second.tasks.resume("skip-1", skip=True)
        result = await svc(second).result("skip-1", timeout=30)
        assert result.answer == "I could not confirm the charge."
        seen = svc(second).provider_for("app.models:m").calls[-1].messages[-1]
        assert seen.role == "tool" and seen.content == SKIPPED_NOTE and "skipped" in seen.content


async def test_a_non_final_stop_prints_its_last_text_once_and_each_tool_failure_once(make_app, caplog):
    import io
    import logging

    from wippy_agents.console.agent_cmd import AgentPrinter

    script = [{"text": "Let me add.", "tool_calls": [call("add", x="a", y=1)]},
              {"text": "checking", "tool_calls": [call("add", x=1, y=1)]}]
    app = await make_app(app_text(script, agent={"max_turns": 2}))
    out, err = io.StringIO(), io.StringIO()
    printer = AgentPrinter(out=out, err=err)
    with caplog.at_level(logging.INFO, logger="wippy_agents"):
        result = await svc(app).run("app.agents:a", "add", timeout=30, on_event=printer)
    printer.finish(result.answer)
    assert result.stop_reason == "max_turns" and result.answer == "checking"
    assert out.getvalue() == "Let me add.\nchecking\n"
    assert err.getvalue().count("add failed: invalid arguments") == 1
    assert not [r for r in caplog.records if "invalid arguments" in r.getMessage()]  # no second copy via logging
