"""``ModelConfig``: the settings of one ``llm.model`` entry, checked once.

    >>> cfg = ModelConfig.from_dict({"provider": "openai", "model": "gpt-4o-mini"}, id="app.models:default")
    >>> cfg.api_key_env
    'OPENAI_API_KEY'
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from wippy_agents.errors import ConfigError
from wippy_agents.security.secrets import reveal, shown

__all__ = ["ModelConfig", "ProviderName", "DEFAULT_API_KEY_ENV", "load_script"]

ProviderName = Literal["openai", "anthropic", "openai_compatible", "scripted"]

DEFAULT_API_KEY_ENV: dict[str, str | None] = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "openai_compatible": None,  # local servers (Ollama, vLLM, llama.cpp) usually need no key
    "scripted": None,
}

_NUMBERS = {  # field -> (type, minimum)
    "context_window": (int, 1),
    "max_output_tokens": (int, 1),
    "temperature": (float, 0.0),
    "price_input_per_million": (float, 0.0),
    "price_output_per_million": (float, 0.0),
    "timeout": (float, 0.001),
    "max_retries": (int, 0),
}
_SECRET_REF = re.compile(r"\$\{secret:[A-Za-z_][A-Za-z0-9_]*\}")
_ALIASES = {"input_price": "price_input_per_million", "output_price": "price_output_per_million"}


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """One model: which provider, which model, its limits, prices and call policy.

    ``script`` is the scripted provider's list of replies (already loaded when
    the entry said ``script: file://x.yaml``).
    """

    provider: ProviderName
    model: str = ""
    id: str = ""  # the llm.model entry id, quoted in every error
    api_key_env: str | None = None
    api_key_ref: str | None = None  # "${secret:NAME}" as written; the key itself is read only in api_key()
    base_url: str | None = None
    context_window: int = 128_000
    max_output_tokens: int | None = None
    temperature: float | None = None
    price_input_per_million: float = 0.0
    price_output_per_million: float = 0.0
    timeout: float = 60.0
    max_retries: int = 3
    script: tuple[dict[str, Any], ...] | None = None
    where: str = field(default="", compare=False)  # "file:line" of the entry, for messages

    def __post_init__(self) -> None:
        if self.api_key_env is None and DEFAULT_API_KEY_ENV.get(self.provider):
            object.__setattr__(self, "api_key_env", DEFAULT_API_KEY_ENV[self.provider])

    @classmethod
    def from_entry(cls, entry: Any) -> ModelConfig:
        """From a registry ``Entry`` of kind ``llm.model`` (uses ``.id``, ``.data``, ``.file``, ``.line``)."""
        file = getattr(entry, "file", None)
        line = getattr(entry, "line", None)
        where = f"{file}:{line}" if file and line else (str(file) if file else "")
        base_dir = Path(file).parent if file else None
        return cls.from_dict(dict(entry.data), id=str(entry.id), base_dir=base_dir, where=where)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, id: str = "", base_dir: Path | None = None,
                  where: str = "") -> ModelConfig:
        """Check and convert an entry's fields; raises ``ConfigError`` naming the entry and field."""

        def fail(msg: str) -> ConfigError:
            prefix = f"{where}: " if where else ""
            return ConfigError(f"{prefix}llm.model {id!r}: {msg}", entry=id, where=where)

        provider = data.get("provider")
        if provider not in get_args(ProviderName):
            raise fail(f"provider must be one of {', '.join(get_args(ProviderName))}, not {provider!r}")
        model = data.get("model") or ("scripted" if provider == "scripted" else "")
        if not isinstance(model, str) or not model:
            raise fail("field 'model' is required (the provider's model name, e.g. 'gpt-4o-mini')")
        data = dict(data)
        for alias, name in _ALIASES.items():  # the registry's llm.model schema names prices this way
            if data.get(alias) is not None:
                if data.get(name) is not None and data[name] != data[alias]:
                    raise fail(f"fields {alias!r} and {name!r} disagree; give one of them")
                data[name] = data[alias]
        values: dict[str, Any] = {}
        for name, (kind, minimum) in _NUMBERS.items():
            if data.get(name) is None:
                continue
            raw = data[name]
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or (kind is int and raw != int(raw)):
                raise fail(f"field {name!r} must be a number{' (whole)' if kind is int else ''}, not {raw!r}")
            if raw < minimum:
                raise fail(f"field {name!r} must be >= {minimum}, not {raw!r}")
            values[name] = kind(raw)
        base_url = data.get("base_url")
        if provider == "openai_compatible" and not base_url:
            raise fail("provider 'openai_compatible' needs 'base_url' (e.g. http://localhost:11434/v1 for Ollama)")
        api_key_env = data.get("api_key_env", DEFAULT_API_KEY_ENV[provider])
        if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env):
            raise fail(f"field 'api_key_env' must name an environment variable, not {api_key_env!r}")
        api_key_ref = data.get("api_key")
        if api_key_ref is not None and (not isinstance(api_key_ref, str) or not _SECRET_REF.fullmatch(api_key_ref)):
            raise fail("field 'api_key' must be a reference such as ${secret:OPENAI_API_KEY} (a key written in a "
                       "file would be stored in every registry version)")
        if isinstance(base_url, str):
            base_url = shown(base_url)  # ${env:} expanded; a ${secret:} stays masked
        script = None
        if provider == "scripted" and data.get("script") is not None:  # none at all: the offline model
            script = load_script(data.get("script"), base_dir, fail, source=data.get("script_path"))
        return cls(provider=provider, model=model, id=id, api_key_env=api_key_env, api_key_ref=api_key_ref, base_url=base_url,
                   script=script, where=where, **values)

    def api_key(self) -> str | None:
        """The key (``api_key: ${secret:NAME}``, else the ``api_key_env`` variable), or None when
        unset; never logged, never shown to Lua or a model."""
        if self.api_key_ref:
            return reveal(self.api_key_ref) or None
        if not self.api_key_env:
            return None
        return os.environ.get(self.api_key_env) or None


def load_script(raw: Any, base_dir: Path | None = None, fail=None, *,
                source: str | None = None) -> tuple[dict[str, Any], ...]:
    """Check a scripted model's replies: a list, ``file://x.yaml`` (relative to ``base_dir``), or
    YAML text (what the registry loader leaves after reading a ``file://`` field; ``source`` names it).

    Raises ``ConfigError`` (through ``fail``) naming the reply number and what is wrong.
    """
    if fail is None:
        def fail(msg: str) -> ConfigError:
            return ConfigError(f"scripted model: {msg}")
    if isinstance(raw, str) and not raw.startswith("file://"):
        try:
            raw = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise fail(f"script {source or 'text'!r} is not valid YAML: {' '.join(str(exc).split())}") from None
        if isinstance(raw, dict) and "script" in raw:
            raw = raw["script"]
    source = source or "inline script"
    if isinstance(raw, str) and raw.startswith("file://"):
        path = Path(raw[len("file://"):])
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise fail(f"cannot read script {str(path)!r}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise fail(f"script {str(path)!r} is not valid YAML: {' '.join(str(exc).split())}") from None
        source = str(path)
        if isinstance(raw, dict) and "script" in raw:  # allow a file with a top-level `script:` key
            raw = raw["script"]
    if not isinstance(raw, list):
        raise fail("provider 'scripted' needs 'script': a list of replies, inline or file://x.yaml")
    allowed = {"text", "tool_calls", "chunks", "usage", "error", "stop_reason", "delay"}
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise fail(f"{source}: reply #{i + 1} must be a mapping like {{text: ...}}, not {item!r}")
        unknown = set(item) - allowed
        if unknown:
            raise fail(f"{source}: reply #{i + 1} has unknown field(s) {sorted(unknown)}; "
                       f"allowed: {sorted(allowed)}")
        for j, call in enumerate(item.get("tool_calls") or ()):
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                raise fail(f"{source}: reply #{i + 1} tool call #{j + 1} needs a 'name' (and 'arguments')")
        chunks = item.get("chunks")
        if chunks is not None and not (isinstance(chunks, list) and all(isinstance(c, str) for c in chunks)):
            raise fail(f"{source}: reply #{i + 1}: 'chunks' must be a list of strings")
        delay = item.get("delay")
        if delay is not None and (isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0):
            raise fail(f"{source}: reply #{i + 1}: 'delay' must be seconds >= 0 (a pause before each chunk)")
        error = item.get("error")
        if error is not None and not (isinstance(error, dict) and isinstance(error.get("message"), str)):
            raise fail(f"{source}: reply #{i + 1}: 'error' must be {{type: RateLimited, message: ...}}")
        if chunks is not None and "text" in item and "".join(chunks) != item["text"]:
            raise fail(f"{source}: reply #{i + 1}: the chunks do not add up to its 'text'")
    return tuple(raw)
