"""A local OpenAI-compatible server on 127.0.0.1 for the console's pty tests: scripted replies, recorded requests.

Each reply is ``{"text": ..., "tool_calls": [{"name", "arguments"}], "chunks": [...], "delay": s}``;
the server streams it as Chat Completions SSE (``[DONE]`` at the end), with usage, and keeps
every request body in ``requests`` so a test can assert what the console sent.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self, replies: list[dict[str, Any]]) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                with fake._lock:
                    fake.requests.append(body)
                    reply = fake.replies.pop(0) if fake.replies else {"text": "(the fake server has no more replies)"}
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                try:
                    for chunk in _chunks(reply, body.get("model") or "fake"):
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                        if reply.get("delay"):
                            time.sleep(float(reply["delay"]))
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):  # the client hung up (Ctrl-C)
                    pass
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def _chunks(reply: dict[str, Any], model: str) -> list[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    out = [chunk({"role": "assistant", "content": ""})]
    for piece in reply.get("chunks") or ([reply["text"]] if reply.get("text") else []):
        out.append(chunk({"content": piece}))
    calls = reply.get("tool_calls") or []
    for i, call in enumerate(calls):
        out.append(chunk({"tool_calls": [{"index": i, "id": f"call_{len(out)}_{i}", "type": "function",
                                          "function": {"name": call["name"],
                                                       "arguments": json.dumps(call["arguments"])}}]}))
    out.append(chunk({}, "tool_calls" if calls else "stop"))
    out.append({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [],
                "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55}})
    return out
