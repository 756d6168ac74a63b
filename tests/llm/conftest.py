"""Fixtures for the model layer: SSE bodies, a respx router behind an httpx2 client, keys."""

from __future__ import annotations

import json
from typing import Any

import pytest
import respx

from wippy_agents.testing import FakeClock, mock_http_client

OPENAI_URL = "https://api.openai.com/v1/chat/completions"
ANTHROPIC_URL = "https://api.anthropic.com/v1/messages"


def openai_sse(*chunks: dict[str, Any]) -> str:
    """A Chat Completions event stream made of ``chunks`` (each the fields of one chunk)."""
    lines = []
    for chunk in chunks:
        body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                "choices": [], **chunk}
        lines.append(f"data: {json.dumps(body)}\n\n")
    lines.append("data: [DONE]\n\n")
    return "".join(lines)


def oa_delta(finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def oa_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                     "total_tokens": prompt + completion}}


def anthropic_sse(*events: dict[str, Any]) -> str:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)


def an_start(input_tokens: int = 10) -> dict[str, Any]:
    return {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-5", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}


def an_text_block(index: int, *pieces: str) -> list[dict[str, Any]]:
    return [{"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
            *({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": p}}
              for p in pieces),
            {"type": "content_block_stop", "index": index}]


def an_tool_block(index: int, id: str, name: str, *json_pieces: str) -> list[dict[str, Any]]:
    return [{"type": "content_block_start", "index": index,
             "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}},
            *({"type": "content_block_delta", "index": index,
               "delta": {"type": "input_json_delta", "partial_json": p}} for p in json_pieces),
            {"type": "content_block_stop", "index": index}]


def an_end(stop_reason: str, output_tokens: int) -> list[dict[str, Any]]:
    return [{"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
             "usage": {"output_tokens": output_tokens}}, {"type": "message_stop"}]


SSE_HEADERS = {"content-type": "text/event-stream"}


@pytest.fixture
def router():
    """A respx router; every request must match a route, and every route must be used."""
    r = respx.MockRouter(assert_all_called=True, assert_all_mocked=True)
    yield r
    r.assert_all_called()


@pytest.fixture
async def http(router):
    client = mock_http_client(router)
    yield client
    await client.aclose()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-anthropic")
