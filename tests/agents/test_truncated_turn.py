"""A model reply cut short mid-stream ends the run with the error; it is never journaled as the answer,
and the task resumes by making that model call again (the real openai SDK, HTTP mocked with respx)."""

from __future__ import annotations

import httpx
import pytest
import respx

from wippy_agents.errors import ProviderError
from wippy_agents.llm import ModelConfig, make_provider
from wippy_agents.testing import mock_http_client

from ..llm.conftest import OPENAI_URL, SSE_HEADERS, oa_delta, oa_usage, openai_sse
from .helpers import app_text

CUT = openai_sse(oa_delta(role="assistant", content="The answer is")).replace("data: [DONE]\n\n", "")
WHOLE = openai_sse(oa_delta(role="assistant", content="The answer is 42."), oa_delta(finish="stop"), oa_usage(9, 5))


def agents(app):
    return app.agents


async def test_a_cut_short_reply_fails_the_run_unjournaled_and_resume_calls_again(make_app, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    app = await make_app(app_text([], model={"provider": "openai", "model": "gpt-4o-mini"}))
    router = respx.MockRouter(assert_all_mocked=True)
    route = router.post(OPENAI_URL).mock(side_effect=[httpx.Response(200, text=CUT, headers=SSE_HEADERS),
                                                       httpx.Response(200, text=WHOLE, headers=SSE_HEADERS)])
    http = mock_http_client(router)
    cfg = ModelConfig.from_dict({"provider": "openai", "model": "gpt-4o-mini", "max_retries": 1,
                                 "context_window": 100000}, id="app.models:m")

    async def no_wait(_seconds):
        return None

    agents(app).use_provider("app.models:m", make_provider(cfg, http_client=http, sleep=no_wait))
    try:
        task = await agents(app).start("app.agents:a", "what is the answer?", task_id="cut-1")
        with pytest.raises(ProviderError, match="openai model .app.models:m..*ended after part of the reply "
                                                "without a finish_reason.*not retried.*"
                                                "`wippy tasks resume cut-1` makes it again"):
            await agents(app).result(task.id, timeout=30)
        assert (await app.tasks.get("cut-1")).status == "failed"
        steps = await app.store.journal_load("cut-1")
        assert [s for s in steps if s.name == "model"] == []  # the fragment was not recorded as a reply

        await app.tasks.resume("cut-1")
        result = await agents(app).result("cut-1", timeout=30)
        assert (result.answer, result.stop_reason) == ("The answer is 42.", "final")
        assert route.call_count == 2
        steps = await app.store.journal_load("cut-1")
        assert [(s.name, s.status, s.result["stop_reason"]) for s in steps if s.name == "model"] == [
            ("model", "ok", "stop")]
    finally:
        await http.aclose()
