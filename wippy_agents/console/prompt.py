"""The console's line editor (prompt_toolkit): multi-line input, completion, history, the toolbar.

prompt_toolkit is the standard for this in Python terminals (IPython, pgcli, aider use it):
multi-line editing, bracketed paste, completion menus, persistent searchable history
(Ctrl-R) and a bottom toolbar, none of which stdlib ``readline`` gives. Rich still
renders everything else.

Keys: Enter sends; Alt-Enter or Esc then Enter inserts a newline; a bracketed paste
(every modern terminal sends one) stays one message whatever newlines it holds;
Tab completes slash commands and the ids they take (agents, tools, models, registry
entries, tasks); Up/Down and Ctrl-R search the history (``.wippy/console_history``);
Ctrl-X Ctrl-E edits the line in ``$EDITOR``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings

__all__ = ["LineEditor", "SlashCompleter", "context_bar", "key_bindings"]

# which ids each command takes as its first argument
_ARGUMENT_KINDS = {"use": "agents", "model": "models", "show": "entries", "registry": "entries",
                   "resume": "tasks", "tools": "tools"}


def context_bar(used: int, window: int, width: int = 12) -> str:
    """``[████░░░░] 12.3k/128k 9%``: how full the model's context window is.

    >>> context_bar(50, 100, width=4)
    '[██░░] 50/100 50%'
    """
    if window <= 0:
        return "[?]"
    share = min(1.0, max(0.0, used / window))
    cells = round(share * width)
    return f"[{'█' * cells}{'░' * (width - cells)}] {_k(used)}/{_k(window)} {share:.0%}"


def _k(n: int) -> str:
    return f"{n / 1000:.1f}k" if 1000 <= n < 100_000 else f"{n // 1000}k" if n >= 100_000 else str(n)


class SlashCompleter(Completer):
    """Completes ``/command`` names, then the id a command takes (from ``ids(kind)``)."""

    def __init__(self, commands: Callable[[], Iterable[str]], ids: Callable[[str], Iterable[str]]) -> None:
        self.commands = commands
        self.ids = ids

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/") or "\n" in text:
            return
        name, space, rest = text[1:].partition(" ")
        if not space:
            for cmd in sorted(self.commands()):
                if cmd.startswith(name):
                    yield Completion("/" + cmd, start_position=-len(text))
            return
        kind = _ARGUMENT_KINDS.get(name)
        if kind is None or " " in rest:
            return
        for ident in sorted(set(self.ids(kind))):
            if ident.startswith(rest) or ident.rpartition(":")[2].startswith(rest) and rest:
                yield Completion(ident, start_position=-len(rest))


def key_bindings() -> KeyBindings:
    """Enter (and Ctrl-J, what a pty's newline is) sends; Alt-Enter / Esc-Enter insert a newline."""
    kb = KeyBindings()

    @kb.add("enter")
    @kb.add("c-j")
    def _send(event: Any) -> None:
        buf = event.current_buffer
        state = buf.complete_state
        if state is not None:  # a completion picked in the menu is taken, then the line is sent
            if state.current_completion is not None:
                buf.apply_completion(state.current_completion)
            buf.complete_state = None
        buf.validate_and_handle()

    @kb.add("escape", "enter")
    @kb.add("escape", "c-j")
    def _newline(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    return kb


class LineEditor:
    """One prompt_toolkit session for the console's lifetime (its history persists in ``history``)."""

    def __init__(self, *, history: Path, completer: Completer,
                 toolbar: Callable[[], str]) -> None:
        history.parent.mkdir(parents=True, exist_ok=True)
        self._toolbar = toolbar
        self.session: PromptSession[str] = PromptSession(
            history=FileHistory(str(history)), completer=completer, complete_while_typing=False,
            key_bindings=key_bindings(), multiline=True, enable_open_in_editor=True,
            bottom_toolbar=self._bar, prompt_continuation=lambda width, line, wrap: "." * (width - 1) + " ",
            enable_history_search=False, mouse_support=False)

    def _bar(self) -> FormattedText:
        return FormattedText([("", " " + self._toolbar())])

    def read(self, prompt: str) -> str:
        """One message (raises ``EOFError`` on Ctrl-D, ``KeyboardInterrupt`` on Ctrl-C)."""
        return self.session.prompt(prompt)
