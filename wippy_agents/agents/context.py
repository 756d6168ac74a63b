"""``ContextWindow``: the conversation of one run, kept within the model's window.

Each message is counted once, when it is added; the window keeps running
totals, so building the prompt of a turn costs work for the new turn only,
not for the whole conversation. When the conversation outgrows the window the
oldest *groups* go first: a group is one user message, or one assistant
message together with the results of every tool call it made, so a call is
never separated from its result. The system prompt and the first user message
(the task) are pinned. With ``context: {strategy: summarise}`` the agent loop
first replaces the oldest groups by a summary the model writes (``oldest`` /
``summarise``); dropping is the fallback when that is not enough. Tool results
longer than ``max_tool_result_tokens`` are cut with a marker when they are added.

>>> from wippy_agents.llm import TokenCounter, Message
>>> win = ContextWindow(TokenCounter("gpt-4o"), window=8000)
>>> win.set_system("You help.")
>>> win.add(Message.user("hi"))
>>> [m.role for m in win.messages()]
['system', 'user']

``messages()`` raises ``ContextOverflow`` when the system prompt alone (plus
the room kept for the reply and the tool definitions) does not fit.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ..errors import ContextOverflow
from ..llm import Message, TokenCounter, encoding_for_model
from ..llm.tokens import REPLY_PRIMER
from .summary import summary_message

__all__ = ["ContextWindow", "truncate_text", "TRUNCATION_MARKER"]

TRUNCATION_MARKER = "\n[... truncated by wippy: the result had {total} tokens; the first {kept} are shown]"


@dataclass(kw_only=True, slots=True)
class _Group:
    messages: list[Message] = field(default_factory=list)
    tokens: int = 0


class ContextWindow:
    """The running conversation of one agent run; not thread-safe, never blocks."""

    def __init__(self, counter: TokenCounter, *, window: int, reserve_output: int | None = None,
                 max_tool_result_tokens: int | None = None) -> None:
        self.counter = counter
        self.window = window
        # Room kept for the reply: the model's max output, else a quarter of a small window.
        self.reserve_output = reserve_output if reserve_output is not None else min(4096, window // 4)
        self.max_tool_result_tokens = max_tool_result_tokens or max(64, window // 4)
        self._system: Message | None = None
        self._system_tokens = 0
        self._task: Message | None = None
        self._task_tokens = 0
        self._groups: deque[_Group] = deque()
        self._total = 0  # tokens of every kept group
        self.dropped = 0  # messages dropped so far (never brought back)
        self._note: Message | None = None
        self._note_tokens = 0
        self.summary = ""  # the model's summary of the turns it replaced (strategy: summarise)
        self.summarised = 0  # messages that summary replaced
        self._summary: Message | None = None
        self._summary_tokens = 0
        self._flat: list[Message] = []  # the kept groups' messages, appended in place
        self._flat_start = 0  # index in _flat of the oldest kept message

    # -- building ----------------------------------------------------------
    def set_system(self, text: str) -> None:
        """Set (or change) the system prompt; counted only when the text changed."""
        if self._system is None or self._system.content != text:
            self._system = Message.system(text)
            self._system_tokens = self.counter.message(self._system)

    def add(self, message: Message) -> None:
        """Append a message: a user/assistant message starts a group, a tool result joins the last one."""
        if message.role == "tool":
            if not self._groups or not self._groups[-1].messages or self._groups[-1].messages[0].role != "assistant":
                raise ValueError("a tool result must follow the assistant message that called the tool")
            message = self._cut(message)
            group = self._groups[-1]
        elif message.role == "user" and self._task is None:
            self._task = message
            self._task_tokens = self.counter.message(message)
            return
        else:
            group = _Group()
            self._groups.append(group)
        n = self.counter.message(message)
        group.messages.append(message)
        group.tokens += n
        self._total += n
        self._flat.append(message)

    def _cut(self, message: Message) -> Message:
        text, cut = truncate_text(message.content, self.max_tool_result_tokens, self.counter)
        return message if not cut else Message.tool(message.tool_call_id or "", text, name=message.name)

    # -- reading -----------------------------------------------------------
    @property
    def tokens(self) -> int:
        """Tokens of the prompt ``messages()`` would build now."""
        return self._fixed() + self._total + REPLY_PRIMER

    def budget(self, tools_tokens: int = 0) -> int:
        return self.window - self.reserve_output - tools_tokens - REPLY_PRIMER

    def messages(self, tools_tokens: int = 0) -> list[Message]:
        """The prompt for the next model call, oldest groups dropped until it fits.

        Raises ``ContextOverflow`` if the system prompt alone does not fit, or if
        the newest group (the last reply and its tool results) cannot fit.
        """
        budget = self.budget(tools_tokens)
        if self._system_tokens > budget:
            raise ContextOverflow(
                f"the system prompt has {self._system_tokens} tokens but the model's window leaves room for "
                f"{budget} (window {self.window}, {self.reserve_output} kept for the reply, {tools_tokens} for "
                "tool definitions); shorten the prompt or use a model with a larger context_window",
                tokens=self._system_tokens, budget=budget,
            )
        while self._fixed() + self._total > budget and len(self._groups) > 1:
            self._drop_oldest()
        if self._fixed() + self._total > budget:
            raise ContextOverflow(
                f"the newest turn needs {self._total} tokens besides the {self._fixed()} of the system prompt and "
                f"task, but the window leaves room for {budget}; lower max_tool_result_tokens or use a model "
                "with a larger context_window", tokens=self._total, budget=budget,
            )
        out: list[Message] = [self._system] if self._system is not None else []
        if self._note is not None:
            out.append(self._note)
        if self._task is not None:
            out.append(self._task)
        if self._summary is not None:
            out.append(self._summary)
        out.extend(self._flat[self._flat_start:] if self._flat_start else self._flat)
        return out

    def _fixed(self) -> int:
        return self._system_tokens + self._note_tokens + self._task_tokens + self._summary_tokens

    # -- summarising (strategy: summarise) ---------------------------------
    def overflow(self, tools_tokens: int = 0) -> int:
        """Tokens by which the prompt now exceeds the room the window leaves it (0 when it fits)."""
        return max(0, self._fixed() + self._total - self.budget(tools_tokens))

    def oldest(self, tokens: int) -> list[Message]:
        """The messages of the fewest oldest whole groups holding at least ``tokens`` tokens.

        Never the newest group (the turn in progress), and never part of a group, so a tool call
        and its result are summarised together or not at all. ``[]`` when there is nothing to take.
        """
        out: list[Message] = []
        held = 0
        for group in list(self._groups)[:-1]:
            if held >= tokens and out:
                break
            out.extend(group.messages)
            held += group.tokens
        return out

    def summarise(self, count: int, text: str) -> None:
        """Replace the oldest ``count`` messages (whole groups, as ``oldest`` gave them) by ``text``."""
        taken = 0
        while taken < count and len(self._groups) > 1:
            group = self._groups[0]
            self._drop_oldest(note=False)
            taken += len(group.messages)
        self.summarised += taken
        self.summary = text
        self._summary = summary_message(text, self.summarised)
        self._summary_tokens = self.counter.message(self._summary)

    def _drop_oldest(self, *, note: bool = True) -> None:
        group = self._groups.popleft()
        self._total -= group.tokens
        self._flat_start += len(group.messages)
        if self._flat_start > 256 and self._flat_start > len(self._flat) // 2:
            # compact now and then so the list does not keep every dropped message alive
            del self._flat[: self._flat_start]
            self._flat_start = 0
        if not note:
            return
        self.dropped += len(group.messages)
        self._note = Message.system(
            f"[{self.dropped} earlier messages of this conversation were removed to fit the context window]")
        self._note_tokens = self.counter.message(self._note)


def truncate_text(text: str, max_tokens: int, counter: TokenCounter) -> tuple[str, bool]:
    """``text`` cut to at most ``max_tokens`` tokens (marker included); returns ``(text, was_cut)``."""
    # Cheap pre-check: a token is at least one character, so a short text always fits.
    if len(text) <= max_tokens:
        return text, False
    total = counter.count(text)
    if total <= max_tokens:
        return text, False
    marker_room = counter.count(TRUNCATION_MARKER.format(total=total, kept=max_tokens)) + 2
    kept = max(1, max_tokens - marker_room)
    enc = encoding_for_model(counter.model)
    head = enc.decode(enc.encode_ordinary(text)[:kept])
    return head + TRUNCATION_MARKER.format(total=total, kept=kept), True
