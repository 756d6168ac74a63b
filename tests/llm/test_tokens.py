"""Token counting works offline, with stock tiktoken, and counts a growing history incrementally."""

from __future__ import annotations

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


def test_counting_works_offline_in_a_fresh_process_without_side_effects(tmp_path):
    """A new interpreter, no network (proxy to nowhere), an empty HOME: our encodings work, nothing is
    written, no environment variable is set, and tiktoken's own registry is left as it was."""
    code = textwrap.dedent("""
        import os, tiktoken, tiktoken.registry
        from wippy_agents.llm.tokens import encoding_for_model
        print(encoding_for_model("gpt-4o").encode("hello world"), encoding_for_model("gpt-4").encode("hello world"))
        print(sorted(k for k in os.environ if "TIKTOKEN" in k or "DATA_GYM" in k))
        print(sorted(tiktoken.registry.ENCODINGS))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR")}
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "xdg"), TMPDIR=str(tmp_path / "tmp"),
               HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    for d in ("home", "xdg", "tmp"):
        (tmp_path / d).mkdir()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ids, env_vars, registry = out.stdout.strip().splitlines()
    assert ids == "[24912, 2375] [15339, 1917]"
    assert env_vars == "[]" and registry == "[]"
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # no cache copy anywhere


def test_our_encodings_equal_tiktokens_own_definitions():
    """Same ranks, pattern and special tokens as tiktoken's definitions (built without the network)."""
    import tiktoken_ext.openai_public as public

    from wippy_agents.llm import tokens

    for name in ("o200k_base", "cl100k_base"):
        ours = encoding_for_model("gpt-4o" if name == "o200k_base" else "gpt-4")
        defn = _definition_without_network(public, name)
        assert (ours.name, ours._pat_str, ours._special_tokens) == (name, defn["pat_str"], defn["special_tokens"])
        assert ours.n_vocab == max([*tokens._ranks(name).values(), *defn["special_tokens"].values()]) + 1


def _definition_without_network(public, name):
    """tiktoken's definition of ``name`` with its rank loader stubbed (it would download the file)."""
    real = public.load_tiktoken_bpe
    public.load_tiktoken_bpe = lambda *a, **k: {}
    try:
        return getattr(public, name)()
    finally:
        public.load_tiktoken_bpe = real


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
