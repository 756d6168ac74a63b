"""A provider down (4 × HTTP 500) then up: the task fails, `wippy tasks resume ID --retry` continues it (SPEC §7).

A local OpenAI-compatible server on 127.0.0.1 answers the real ``openai``
client: HTTP 500 while "down" (the SDK's own retries make 4 attempts), a
streamed reply once "up". Nothing of the failed call is journaled as a
result, so the resume makes that call again — and only that one.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from wippy_agents.store import open_store

from ..agents.helpers import app_text


class _Model(BaseHTTPRequestHandler):
    up = False
    calls = 0

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        self.rfile.read(int(self.headers.get("content-length") or 0))
        type(self).calls += 1
        if not type(self).up:
            body = json.dumps({"error": {"message": "the provider is down", "type": "server_error"}}).encode()
            self.send_response(500)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        chunks = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "back "}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {"content": "online"}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}},
        ]
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        for chunk in chunks:
            data = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", **chunk}
            self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def model_server():
    _Model.up, _Model.calls = False, 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Model)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


async def _cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "wippy_agents.cli", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.timeout(120)
async def test_a_provider_down_then_up_continues_with_resume_retry(tmp_path, model_server):
    port = model_server.server_address[1]
    model = {"provider": "openai_compatible", "model": "m", "base_url": f"http://127.0.0.1:{port}/v1"}  # 3 retries
    text = app_text([], model=model)
    app = tmp_path / "app.yaml"
    app.write_text(text.replace("    script: []\n", ""))
    url = f"sqlite:///{tmp_path / 'state.db'}"
    code, _, err = await _cli("agent", "run", "app.agents:a", "are you there?", "--task-id", "t3",
                              "--app", str(app), "--store", url)
    assert code == 1 and "t3" in err, err
    assert _Model.calls == 4  # one call and the SDK's three retries
    store = await open_store(url)
    try:
        task = await store.task_get("t3")
        assert task.status == "failed", task
        _Model.up = True  # the provider is back
        code, out, err = await _cli("tasks", "resume", "t3", "--retry", "--app", str(app), "--store", url)
        assert code == 0, err
        assert json.loads(out)["answer"] == "back online"
        task = await store.task_get("t3")
        steps = await store.journal_load("t3")
    finally:
        await store.close()
    assert _Model.calls == 5  # the failed call once more, nothing else
    assert task.status == "succeeded"
    assert [(s.name, s.status) for s in steps] == [("model", "ok")]
