"""The offline model: what a ``scripted`` entry without a ``script`` answers — rule-based, any number of turns.

For the default app, so a newcomer with no network and no API key can hold a
conversation (``wippy console``) that never ends in an error. It reads the
conversation and the tools it was given, and per call:

* after tool results, it reports them in one sentence (``word_count found 5 chars, 3 words.``);
* when the person's newest message names a tool (by its name or the words of
  its description) and the tool's required arguments can be filled from the
  message (text after a colon, or the whole message, for strings; the first
  number for numbers), it calls that tool;
* otherwise it says what it is, which tools it has, what to type to try one,
  and how to connect a real model (OpenAI, Anthropic, a local Ollama) — in
  full the first time, in one line once the conversation holds that answer.

Deterministic: the same conversation always gets the same reply, so replay
and tests need no script. When the agent requires tool calls (a
``final_answer`` tool is offered), the answer is given through that tool.
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

from wippy_agents.llm.types import Message, ToolSpec

__all__ = ["offline_reply", "CONNECT_HINT"]

CONNECT_HINT = (
    "To talk to a real model, uncomment one of the entries in agents/models.yaml and point the agent's "
    "`model:` at it: app.models:openai (set OPENAI_API_KEY), app.models:anthropic (set ANTHROPIC_API_KEY) or "
    "app.models:local (a local Ollama at http://localhost:11434/v1, no key).")
_STOP = {"a", "an", "the", "of", "in", "on", "for", "to", "and", "or", "is", "it", "me", "my", "this", "that",
         "with", "please", "can", "you", "what", "how", "do", "does", "i", "text", "tool", "run", "use"}
_FINAL = "final_answer"


def _words(text: str) -> set[str]:
    out = set()
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word not in _STOP and len(word) > 1:
            out.add(word[:-1] if word.endswith("s") and len(word) > 3 else word)
    return out


def _last_user(messages: Sequence[Message]) -> tuple[int, str]:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            return i, messages[i].content
    return -1, ""


def _fill(schema: dict[str, Any], request: str) -> dict[str, Any] | None:
    """Arguments for the tool's required fields from the request, or None when one cannot be filled."""
    props = schema.get("properties") or {}
    after = request.split(":", 1)[1].strip() if ":" in request else request.strip()
    args: dict[str, Any] = {}
    for name in schema.get("required") or ():
        kind = (props.get(name) or {}).get("type", "string")
        if kind == "string":
            args[name] = after
        elif kind in ("number", "integer"):
            match = re.search(r"-?\d+(?:\.\d+)?", after)
            if match is None:
                return None
            args[name] = int(float(match.group())) if kind == "integer" else float(match.group())
        elif kind == "boolean":
            args[name] = False
        else:
            return None
    return args


def _pick(tools: Sequence[ToolSpec], request: str) -> tuple[ToolSpec, dict[str, Any]] | None:
    asked = _words(request)
    best: tuple[int, ToolSpec] | None = None
    for tool in tools:
        if tool.name == _FINAL:
            continue
        named = _words(tool.name.replace("_", " "))
        score = 3 * len(asked & named) + len(asked & _words(tool.description))
        if score >= 2 and (best is None or score > best[0]):
            best = (score, tool)
    if best is None:
        return None
    args = _fill(best[1].input_schema, request)
    return (best[1], args) if args is not None else None


def _describe(value: Any) -> str:
    if isinstance(value, dict) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 for v in value.values()):
        return ", ".join(f"{v:g} {k}" for k, v in sorted(value.items()))  # Lua tables have no key order
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 300 else text[:299] + "…"


def _report(results: list[Message]) -> str:
    parts = []
    for m in results:
        name = m.name or "the tool"
        if m.content.startswith("ERROR: "):
            parts.append(f"{name} failed: {m.content[len('ERROR: '):]}")
            continue
        try:
            value: Any = json.loads(m.content)
        except json.JSONDecodeError:
            value = m.content
        parts.append(f"{name} found {_describe(value)}")
    return "; ".join(parts) + "."


_INTRO = "I am the offline model of this app"


def _help(tools: Sequence[ToolSpec], request: str, *, again: bool = False) -> str:
    usable = [t for t in tools if t.name != _FINAL]
    if usable:
        listed = "; ".join(f"{t.name} ({t.description.rstrip('.')})" if t.description else t.name for t in usable)
        first = usable[0]
        example = f'"{first.name.replace("_", " ")}: the quick brown fox"'
        tools_part = f"The tools I can run: {listed}. Ask for one by name, e.g. {example}."
    else:
        tools_part = "This agent has no tools, so there is little I can do offline."
    if again:  # the full introduction is already in the conversation: keep it short
        names = ", ".join(t.name for t in usable) or "none"
        return (f"(offline model) I can only run the app's tools ({names}); ask for one by name. "
                "agents/models.yaml says how to connect a real model.")
    said = f'You said: "{request.strip()[:120]}". ' if request.strip() else ""
    return (f"{said}{_INTRO}: no network, no API key, so I do not understand free text; "
            f"I run the app's tools when you ask for them. {tools_part} {CONNECT_HINT}")


def offline_reply(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> dict[str, Any]:
    """The next reply, as a script item (``text``, ``chunks``, ``tool_calls``)."""
    at, request = _last_user(messages)
    after = list(messages[at + 1:]) if at >= 0 else list(messages)
    results = [m for m in after if m.role == "tool"]
    calls: list[dict[str, Any]] = []
    if results and messages and messages[-1].role == "tool":
        text = _report(results)
    else:
        picked = _pick(tools, request) if not results else None
        if picked is not None:
            tool, args = picked
            text = f"Running {tool.name}. "
            calls = [{"name": tool.name, "arguments": args}]
        else:
            again = any(m.role == "assistant" and _INTRO in m.content for m in messages)
            text = _help(tools, request, again=again)
    if not calls and any(t.name == _FINAL for t in tools):
        return {"text": "", "tool_calls": [{"name": _FINAL, "arguments": {"answer": text}}]}
    chunks = re.findall(r"\S+\s*", text) or [text]
    return {"text": text, "chunks": chunks, "tool_calls": calls}
