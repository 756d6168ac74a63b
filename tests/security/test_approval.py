"""``approval: ask``: no person -> denied; an approver sees the exact change; decisions are audited;
``wippy audit`` shows them from the store."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from wippy_agents.errors import ToolError

from .apps import SLUG_SCHEMA, open_app, self_tool

NOTE = {"id": "app.review:note", "description": "Says hello", "input_schema": SLUG_SCHEMA,
        "source": "return {handler = function(a) return 'hello ' .. a.text end}",
        "examples": [{"input": {"text": "you"}, "output": "hello you"}]}


@pytest.fixture
async def app(tmp_path):
    app = await open_app(tmp_path)
    yield app
    await app.close()


async def test_ask_with_no_person_present_is_denied_and_audited(app):
    with pytest.raises(ToolError, match=r"needs a person's approval \(app.security:asker rule 2 .*\) and no "
                                        r"person is present"):
        await self_tool(app, "create_tool", NOTE, agent="app.agents:asker")
    assert app.registry.get("app.review:note") is None
    [record] = [r for r in await app.store.audit_list() if r.decision == "deny"]
    assert (record.actor, record.action, record.resource) == ("agent:app.agents:asker/t1", "registry.write",
                                                               "app.review:note")


async def test_the_approver_sees_the_exact_entry_and_an_approval_is_audited(app):
    seen = []

    async def approver(request):
        seen.append(request)
        await asyncio.sleep(0)  # a person takes their time; the write waits
        return True

    app.security.approver = approver
    result = await self_tool(app, "create_tool", NOTE, agent="app.agents:asker")
    live = app.entry("app.review:note")
    [request] = seen
    assert (request.actor, request.action, request.resource) == ("agent:app.agents:asker/t1", "registry.write",
                                                                 "app.review:note")
    assert request.details["op"] == "create" and request.details["before"] is None
    assert request.details["entry"] == live.to_dict()  # exactly what went live
    assert request.details["entry"]["data"]["source"] == NOTE["source"]
    assert "app.security:asker rule 2" in request.rule
    approved = [r for r in await app.store.audit_list() if r.decision == "approved"]
    assert [(r.actor, r.resource) for r in approved] == [("agent:app.agents:asker/t1", "app.review:note")]
    assert approved[0].details["entry"]["data"]["source"] == NOTE["source"]
    assert result == {"id": "app.review:note", "version": app.registry.version}


async def test_a_rejection_changes_nothing_and_is_audited(app):
    app.security.approver = lambda request: False
    with pytest.raises(ToolError, match="a person rejected it"):
        await self_tool(app, "create_tool", NOTE, agent="app.agents:asker")
    assert app.registry.get("app.review:note") is None
    assert [r.decision for r in await app.store.audit_list() if r.resource == "app.review:note"] == ["rejected"]


async def test_wippy_audit_lists_writes_denials_and_approvals(tmp_path):
    app = await open_app(tmp_path)
    try:
        app.security.approver = lambda request: True
        await self_tool(app, "create_tool", NOTE, agent="app.agents:asker")
        with pytest.raises(ToolError):
            await self_tool(app, "create_tool", {**NOTE, "id": "app.generated:note"}, agent="app.agents:reader")
    finally:
        await app.close()
    done = subprocess.run([sys.executable, "-m", "wippy_agents.cli", "audit", "--app", str(tmp_path / "app.yaml"),
                           "--store", f"sqlite:///{tmp_path / 'state.db'}"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "approved" in out and "app.review:note" in out
    assert "deny" in out and "agent:app.agents:reader/t1" in out and "app.generated:note" in out
    assert "allow" in out  # the write itself, audited by the registry


async def test_a_person_is_asked_once_about_the_same_proposal_even_if_the_write_is_checked_again(app):
    asked = []
    sec = app.security
    sec.approver = lambda request: asked.append(request) or True
    from wippy_agents.security import Actor

    asker = Actor.agent("app.agents:asker", ["app.security:asker"], task_id="t1")
    decision = sec.check(asker, "registry.write", "app.review:x")
    await sec.approve(asker, "registry.write", "app.review:x", decision, details={"entry": {"v": 1}})
    await sec.approve(asker, "registry.write", "app.review:x", decision, details={"entry": {"v": 1}})
    assert len(asked) == 1
    await sec.approve(asker, "registry.write", "app.review:x", decision, details={"entry": {"v": 2}})
    assert len(asked) == 2  # a different proposal is a new question
