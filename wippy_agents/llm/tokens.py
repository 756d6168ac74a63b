"""Token counting with stock tiktoken, offline.

tiktoken downloads its encoding files on first use, which fails on hosts
without network. The package ships ``o200k_base`` and ``cl100k_base`` (the
exact files tiktoken expects; their SHA-256 is checked) in
``wippy_agents/llm/encodings/``; on first use they are copied into tiktoken's
cache directory under the names tiktoken looks for, so plain
``tiktoken.get_encoding`` works with identical token ids. The cache directory
is ``$TIKTOKEN_CACHE_DIR`` (or ``$DATA_GYM_CACHE_DIR``) when set, else
``~/.cache/wippy-agents/tiktoken`` (``$XDG_CACHE_HOME`` honoured), which is
then exported as ``TIKTOKEN_CACHE_DIR`` for this process.

Counting is incremental: ``TokenCounter`` caches each message's count by
identity (messages are immutable), and ``count_messages`` on a history that
grew by appending only counts the new messages.

    >>> count_tokens("hello world", "gpt-4o")
    2
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import weakref
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Sequence

import tiktoken

from wippy_agents.llm.types import Message, ToolSpec

__all__ = [
    "TokenCounter",
    "count_tokens",
    "count_message_tokens",
    "encoding_for_model",
    "encoding_name_for_model",
    "ensure_offline_encodings",
    "OFFLINE_ENCODINGS",
]

log = logging.getLogger(__name__)

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
# name -> sha256 tiktoken checks (tiktoken_ext/openai_public.py)
OFFLINE_ENCODINGS: dict[str, str] = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
DEFAULT_ENCODING = "o200k_base"  # for models tiktoken does not know (Claude, Llama ...): an estimate

# Per the OpenAI cookbook: every message costs a few tokens of framing, and the
# reply is primed with a few more.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_PER_TOOL_CALL = 3
REPLY_PRIMER = 3

_lock = threading.Lock()
_ready: Path | None = None


def _cache_dir() -> Path:
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if os.environ.get(var):
            return Path(os.environ[var])
    if os.environ.get("TIKTOKEN_CACHE_DIR") == "":
        log.warning("TIKTOKEN_CACHE_DIR is empty (cache disabled); using wippy-agents' cache so counting works offline")
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "wippy-agents" / "tiktoken"


def _install(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    data_dir = resources.files("wippy_agents.llm.encodings")
    for name, sha in OFFLINE_ENCODINGS.items():
        target = directory / hashlib.sha1(_BLOB.format(name).encode()).hexdigest()
        if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == sha:
            continue
        with resources.as_file(data_dir / f"{name}.tiktoken") as source:
            if hashlib.sha256(source.read_bytes()).hexdigest() != sha:
                raise RuntimeError(f"shipped encoding file {str(source)!r} is corrupt; reinstall wippy-agents")
            # Write to a temporary name and rename, so a concurrent reader never sees half a file.
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
            os.close(fd)
            try:
                shutil.copyfile(source, tmp)
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)


def ensure_offline_encodings() -> Path:
    """Put the shipped encodings where tiktoken looks; idempotent. Returns the cache directory.

    Blocks on file I/O the first time (about 5 MB copied once per cache dir).
    """
    global _ready
    with _lock:
        if _ready is not None:
            return _ready
        directory = _cache_dir()
        try:
            _install(directory)
        except OSError as exc:  # read-only home: fall back to a private temp dir
            fallback = Path(tempfile.gettempdir()) / f"wippy-agents-tiktoken-{os.getuid()}"
            log.warning("cannot write tiktoken cache %s (%s); using %s", directory, exc, fallback)
            directory = fallback
            _install(directory)
        if os.environ.get("TIKTOKEN_CACHE_DIR") != str(directory) and not os.environ.get("DATA_GYM_CACHE_DIR"):
            os.environ["TIKTOKEN_CACHE_DIR"] = str(directory)
        _ready = directory
        return directory


def encoding_name_for_model(model: str) -> str:
    """tiktoken's encoding for ``model``; ``o200k_base`` for models it does not know."""
    try:
        name = tiktoken.encoding_name_for_model(model.rsplit("/", 1)[-1])
    except KeyError:
        return DEFAULT_ENCODING
    return name if name in OFFLINE_ENCODINGS else "cl100k_base"


@lru_cache(maxsize=None)
def _encoding(name: str) -> tiktoken.Encoding:
    ensure_offline_encodings()
    return tiktoken.get_encoding(name)


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
