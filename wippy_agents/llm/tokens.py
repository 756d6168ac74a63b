"""Token counting with tiktoken, offline and without side effects.

tiktoken downloads its encoding files on first use, which fails on hosts
without network. The package ships ``o200k_base`` and ``cl100k_base`` (the
exact files tiktoken publishes; their SHA-256 is checked) in
``wippy_agents/llm/encodings/``, and builds ``tiktoken.Encoding`` objects from
them directly — the same ranks, pattern and special tokens as tiktoken's own
definitions, so the token ids are identical. Nothing is written anywhere (no
cache directory, no ``TIKTOKEN_CACHE_DIR``), and tiktoken's registry is not
touched: a program's own ``tiktoken.get_encoding`` behaves as it always did.

Counting is incremental: ``TokenCounter`` caches each message's count by
identity (messages are immutable), and ``count_messages`` on a history that
grew by appending only counts the new messages.

    >>> count_tokens("hello world", "gpt-4o")
    2
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import weakref
from functools import lru_cache
from importlib import resources
from typing import Sequence

import tiktoken

from wippy_agents.llm.types import Message, ToolSpec

__all__ = [
    "TokenCounter",
    "count_tokens",
    "count_message_tokens",
    "encoding_for_model",
    "encoding_name_for_model",
    "OFFLINE_ENCODINGS",
]

# name -> sha256 of the published file (as in tiktoken_ext/openai_public.py)
OFFLINE_ENCODINGS: dict[str, str] = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
_ENDOFTEXT, _ENDOFPROMPT = "<|endoftext|>", "<|endofprompt|>"
# pattern and special tokens of each encoding, copied from tiktoken_ext/openai_public.py (tiktoken 0.7+)
_DEFINITIONS: dict[str, tuple[str, dict[str, int]]] = {
    "cl100k_base": (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|"""
        r"""\s+(?!\S)|\s""",
        {_ENDOFTEXT: 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259, "<|fim_suffix|>": 100260,
         _ENDOFPROMPT: 100276}),
    "o200k_base": (
        "|".join([
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]),
        {_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018}),
}
DEFAULT_ENCODING = "o200k_base"  # for models tiktoken does not know (Claude, Llama ...): an estimate

# Per the OpenAI cookbook: every message costs a few tokens of framing, and the
# reply is primed with a few more.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_PER_TOOL_CALL = 3
REPLY_PRIMER = 3

def _ranks(name: str) -> dict[bytes, int]:
    """The merge ranks of a shipped encoding file (tiktoken's ``.tiktoken`` format: base64 token, rank)."""
    data = (resources.files("wippy_agents.llm.encodings") / f"{name}.tiktoken").read_bytes()
    if hashlib.sha256(data).hexdigest() != OFFLINE_ENCODINGS[name]:
        raise RuntimeError(f"the shipped encoding file {name}.tiktoken is corrupt; reinstall wippy-agents")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def encoding_name_for_model(model: str) -> str:
    """tiktoken's encoding for ``model``; ``o200k_base`` for models it does not know."""
    try:
        name = tiktoken.encoding_name_for_model(model.rsplit("/", 1)[-1])
    except KeyError:
        return DEFAULT_ENCODING
    return name if name in OFFLINE_ENCODINGS else "cl100k_base"


_lock = threading.Lock()


@lru_cache(maxsize=None)
def _encoding(name: str) -> tiktoken.Encoding:
    """Built once per process from the shipped file (about 0.2 s for o200k_base); never from the network."""
    with _lock:  # two threads asking at once build it once
        pat_str, special = _DEFINITIONS[name]
        return tiktoken.Encoding(name, pat_str=pat_str, mergeable_ranks=_ranks(name), special_tokens=special)


def encoding_for_model(model: str) -> tiktoken.Encoding:
    """The (offline) tiktoken ``Encoding`` used to count ``model``'s tokens."""
    return _encoding(encoding_name_for_model(model))


class TokenCounter:
    """Counts tokens for one model, caching per message so a growing history is counted once.

        >>> counter = TokenCounter("gpt-4o")
        >>> history = [Message.user("hi")]
        >>> first = counter.count_messages(history)
        >>> history.append(Message.assistant("hello"))
        >>> counter.count_messages(history) > first      # only the new message is encoded
        True
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.encoding_name = encoding_name_for_model(model)
        self._cache: dict[int, tuple[weakref.ref, int]] = {}
        # (first message, prefix length, last message of the prefix, tokens of the prefix)
        self._memo: tuple[weakref.ref, int, weakref.ref, int] | None = None

    def count(self, text: str) -> int:
        """Tokens in ``text`` (special-token text counts as ordinary text)."""
        if not text:
            return 0
        return len(_encoding(self.encoding_name).encode_ordinary(text))

    def message(self, message: Message) -> int:
        """Tokens of one message including framing; cached for the message object's lifetime."""
        key = id(message)
        hit = self._cache.get(key)
        if hit is not None and hit[0]() is message:
            return hit[1]
        n = TOKENS_PER_MESSAGE + self.count(message.content)
        if message.name:
            n += TOKENS_PER_NAME + self.count(message.name)
        for call in message.tool_calls:
            n += TOKENS_PER_TOOL_CALL + self.count(call.name) + self.count(call.arguments_json)
        cache = self._cache
        self._cache[key] = (weakref.ref(message, lambda _r, key=key: cache.pop(key, None)), n)
        return n

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Tokens of a whole prompt (plus the reply primer).

        If ``messages`` extends the sequence of the previous call (same first
        message, same message at the old end), only the new tail is counted.
        """
        total, start = 0, 0
        memo = self._memo
        if memo is not None and messages:
            first, length, last, tokens = memo
            if len(messages) >= length and messages[0] is first() and messages[length - 1] is last():
                total, start = tokens, length
        for m in messages[start:]:
            total += self.message(m)
        if messages:
            self._memo = (weakref.ref(messages[0]), len(messages), weakref.ref(messages[-1]), total)
        return total + REPLY_PRIMER

    def tools(self, tools: Sequence[ToolSpec]) -> int:
        """Tokens the tool definitions add to a prompt (an estimate: providers frame them differently)."""
        return sum(self.count(t.name) + self.count(t.description)
                   + self.count(json.dumps(t.input_schema, sort_keys=True)) + TOKENS_PER_TOOL_CALL
                   for t in tools)


@lru_cache(maxsize=64)
def _counter(model: str) -> TokenCounter:
    return TokenCounter(model)


def count_tokens(text: str, model: str) -> int:
    """Tokens in ``text`` for ``model``."""
    return _counter(model).count(text)


def count_message_tokens(messages: Sequence[Message], model: str) -> int:
    """Tokens of a prompt of ``messages`` for ``model`` (cached per message; see ``TokenCounter``)."""
    return _counter(model).count_messages(messages)
