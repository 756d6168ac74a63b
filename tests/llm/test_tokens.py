"""Token counting works offline, with stock tiktoken, and counts a growing history incrementally."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

import pytest

from wippy_agents.llm import Message, ToolCall, TokenCounter, count_message_tokens, count_tokens
from wippy_agents.llm.tokens import REPLY_PRIMER, TOKENS_PER_MESSAGE, encoding_for_model, encoding_name_for_model


@pytest.mark.parametrize("model, name, ids", [
    ("gpt-4o", "o200k_base", [24912, 2375]),
    ("gpt-4", "cl100k_base", [15339, 1917]),
    ("claude-sonnet-5", "o200k_base", [24912, 2375]),  # unknown to tiktoken: an o200k estimate
])
def test_both_encodings_load_offline_with_the_reference_ids(model, name, ids):
    assert encoding_name_for_model(model) == name
    assert encoding_for_model(model).encode("hello world") == ids
    assert count_tokens("hello world", model) == 2


def test_plain_tiktoken_works_offline_in_a_fresh_process(tmp_path):
    """A new interpreter, no network (proxy to nowhere), an empty cache dir: stock get_encoding works."""
    code = textwrap.dedent("""
        import tiktoken
        from wippy_agents.llm.tokens import ensure_offline_encodings
        ensure_offline_encodings()
        print(tiktoken.get_encoding("o200k_base").encode("hello world"),
              tiktoken.get_encoding("cl100k_base").encode("hello world"))
    """)
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tmp_path / "cache"),
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[24912, 2375] [15339, 1917]"
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    assert (tmp_path / "cache" / hashlib.sha1(url.encode()).hexdigest()).is_file()


def test_a_conversation_counts_framing_names_and_tool_calls():
    counter = TokenCounter("gpt-4o")
    call = ToolCall(id="c1", name="weather", arguments={"city": "Lisbon"})
    msgs = [Message.user("hello world"), Message.assistant("", [call]), Message.tool("c1", "21", name="weather")]
    per = [counter.message(m) for m in msgs]
    assert per[0] == TOKENS_PER_MESSAGE + 2
    assert per[1] > TOKENS_PER_MESSAGE + counter.count("weather")
    assert per[2] == TOKENS_PER_MESSAGE + counter.count("21") + 1 + counter.count("weather")
    assert count_message_tokens(msgs, "gpt-4o") == sum(per) + REPLY_PRIMER


class SpyCounter(TokenCounter):
    def __init__(self, model):
        super().__init__(model)
        self.encoded: list[str] = []

    def count(self, text):
        self.encoded.append(text)
        return super().count(text)


def test_a_growing_history_only_counts_new_messages():
    counter = SpyCounter("gpt-4o")
    history = [Message.system("You are terse."), Message.user("first")]
    before = counter.count_messages(history)
    counter.encoded.clear()
    history.append(Message.assistant("second"))
    after = counter.count_messages(history)
    assert counter.encoded == ["second"]
    assert after == before + TOKENS_PER_MESSAGE + counter.count("second")

    # Dropping the oldest turn (context trimming) re-sums cached counts without re-encoding.
    counter.encoded.clear()
    trimmed = history[1:]
    assert counter.count_messages(trimmed) == after - counter.message(history[0])
    assert counter.encoded == []


def test_equal_but_distinct_messages_are_counted_on_their_own():
    counter = TokenCounter("gpt-4o")
    a, b = Message.user("same"), Message.user("same")
    assert counter.message(a) == counter.message(b)
    del a  # the cache entry goes with the message
    assert len(counter._cache) == 1
