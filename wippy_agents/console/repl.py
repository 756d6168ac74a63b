"""``wippy console [AGENT] [--resume ID]``: talk to an agent in the terminal.

The App runs on its own event-loop thread (``LoopThread``) so the main thread
owns the terminal: the line editor (prompt_toolkit, ``prompt.py``: multi-line
input, bracketed paste, Tab completion, history under the app's ``.wippy/``,
a bottom toolbar with the model, context fill, tokens and cost), Ctrl-C
(cancels the turn in flight, or clears the line), Ctrl-D (leaves), approval
questions, and rich ``Live`` output while a turn streams. Everything else is the Python API:
``app.sessions`` (``console.session``) and the slash commands.
"""

from __future__ import annotations

import argparse
import logging
import sys
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Coroutine

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.text import Text

from ..errors import WippyError
from ..llm import Message, TokenCounter
from .prompt import LineEditor, SlashCompleter, context_bar
from .approvals import ApprovalDesk, parse_answer, request_task, with_example_results
from .render import TurnView, approval_view, money, status_text
from .slash import COMMANDS, QUIT, describe_error, run_command
from .terminal import LoopThread, forget_last_line, history_file, lock_session, route_logs, unroute_logs

__all__ = ["run", "ConsoleShell"]

log = logging.getLogger(__name__)


class ConsoleShell:
    """The console's state and its two activities: reading lines and running turns."""

    def __init__(self, app: Any, session: Any, *, loop: LoopThread, console: Console, desk: ApprovalDesk) -> None:
        self.app = app
        self.session = session
        self.loop = loop
        self.console = console
        self.desk = desk
        self.editor: LineEditor | None = None  # None when stdin is not a terminal (lines are read plainly)
        self.release: Callable[[], None] = lambda: None  # frees the session's lock file
        self._fill: tuple[Any, tuple[int, int]] = (None, (0, 0))
        self._task_ids: list[str] = []

    # -- Shell (for slash commands) ------------------------------------------------
    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.call(coro)

    def lock(self, session_id: str) -> Callable[[], None]:
        return lock_session(Path(self.app.settings.root), session_id)

    def switch(self, session: Any, release: Callable[[], None] | None = None) -> None:
        self.release()
        self.session = session
        self.release = release or (lambda: None)

    # -- the loop ----------------------------------------------------------------
    def repl(self) -> None:
        """Read and handle lines until Ctrl-D or /quit."""
        while True:
            try:
                line = self.editor.read(self.prompt()) if self.editor is not None else input(self.prompt())
            except EOFError:
                self.console.print()
                return
            except KeyboardInterrupt:
                self.console.print("^C  (Ctrl-D or /quit leaves)", style="dim")
                continue
            text = line.strip()
            if not text:
                continue
            if self.editor is not None:
                self.refresh_ids()
            if text.startswith("/"):
                try:
                    if run_command(self, text) == QUIT:
                        return
                except KeyboardInterrupt:
                    self.console.print("interrupted", style="dim")
                except WippyError as exc:
                    self.console.print(Text(describe_error(exc), style="red"))
                except Exception as exc:  # noqa: BLE001 - a bug in one command must not end the session
                    log.error("%s failed: %s", text.split()[0], describe_error(exc), exc_info=exc)
                continue
            try:
                self.run_turn(text)
            except WippyError as exc:
                self.console.print(Text(f"error: {describe_error(exc)}", style="red"))
            except Exception as exc:  # noqa: BLE001 - a bug in one turn must not end the session
                log.error("the turn failed: %s", describe_error(exc), exc_info=exc)

    def prompt(self) -> str:
        return f"{self.session.agent.rpartition(':')[2]}> "

    def _model_cfg(self) -> Any:
        """The config of the model the next turn uses (the session's ``/model``, else the agent's)."""
        import dataclasses

        service = self.app.agents
        spec = service.spec(self.session.agent)
        if spec.is_lua:
            return None
        if self.session.state.model:
            spec = dataclasses.replace(spec, model=self.session.state.model)
        return service.model(spec)[0]

    def model_name(self) -> str:
        try:
            cfg = self._model_cfg()
        except WippyError:
            return "?"
        return "lua agent" if cfg is None else cfg.model

    def offline(self) -> bool:
        """Whether the session's model is the scripted/offline one (the first screen says how to connect)."""
        try:
            cfg = self._model_cfg()
        except WippyError:
            return False
        return cfg is not None and cfg.provider == "scripted"

    def context_fill(self) -> tuple[int, int]:
        """(tokens the next prompt starts with, the model's window): system prompt + the conversation."""
        state = self.session.state
        key = (self.session.id, state.agent, state.model, len(state.turns), len(state.compactions),
               state.context_from)
        if self._fill[0] == key:
            return self._fill[1]
        try:
            cfg = self._model_cfg()
            if cfg is None:
                return 0, 0
            spec = self.app.agents.spec(state.agent)
            messages = [Message.system(spec.system_prompt(self.app.registry.snapshot(), {})),
                        *(Message.from_dict(m) for m in state.history())]
            fill = (TokenCounter(cfg.model).count_messages(messages), cfg.context_window)
        except WippyError:
            fill = (0, 0)
        self._fill = (key, fill)
        return fill

    def toolbar(self, doing: str = "ready") -> str:
        """The pinned bottom line: model · context fill · last turn · session · what is happening."""
        state = self.session.state
        used, window = self.context_fill()
        last = state.turns[-1].usage if state.turns else None
        from .render import money

        parts = [f"{self.model_name()}", f"ctx {context_bar(used, window)}" if window else "ctx ?"]
        if last is not None:
            parts.append(f"turn {last.total_tokens:,} tok {money(last.cost_usd)}")
        total = state.usage
        parts.append(f"session {total.total_tokens:,} tok {money(total.cost_usd)}")
        parts.append(doing)
        return " · ".join(parts)

    def ids(self, kind: str) -> list[str]:
        """Completion candidates for a command's argument."""
        registry = self.app.registry
        if kind == "agents":
            return [str(e.id) for e in registry.find(kind="agent")]  # a bare name completes to the full id
        if kind == "models":
            return [str(e.id) for e in registry.find(kind="llm.model")]
        if kind == "tools":
            return [str(e.id) for e in registry.find(meta={"type": "tool"})]
        if kind == "tasks":
            return list(self._task_ids)
        return [str(e.id) for e in registry.find()]

    def refresh_ids(self) -> None:
        """Task ids for completion, read once per prompt (the store is on the App's loop)."""
        try:
            self._task_ids = [t.id for t in self.call(self.app.store.task_list(limit=50))]
        except WippyError:
            pass

    def _scripted_model(self, agent: str) -> bool:
        service = self.app.agents
        try:
            spec = service.spec(agent)
            return not spec.is_lua and service.model(spec)[0].provider == "scripted"
        except WippyError:
            return False

    def run_turn(self, text: str | None) -> None:
        """Send ``text`` (None: finish the turn a crash interrupted) and render the turn as it runs."""
        session = self.session
        used, window = self.context_fill()
        view = TurnView(self.console, model=self.model_name(), session_usage=session.state.usage,
                        agent=session.agent, context=f"ctx {context_bar(used, window)}" if window else "")
        coro = session.send(text, on_event=view.on_event) if text is not None else \
            session.finish_pending(on_event=view.on_event)
        future = self.loop.submit(coro)
        turn = self._wait(future, view, session)
        if turn is None:
            return
        if not view.printed_text and turn.answer:
            self.console.print(Markdown(turn.answer))
        if turn.stop_reason == "cancelled":
            turn_task = turn.task_id
            self.desk.reject_where(lambda r: (request_task(r) or "").startswith(turn_task))
            partial = view.partial()
            if partial.strip():  # keep what was streamed, rendered; the live area that showed it is gone
                self.console.print(Markdown(partial.rstrip() + " …"))
            self.console.print(Text.assemble(("turn cancelled", "yellow"),
                                             (f" · the prompt sent: {turn.usage.input_tokens:,} tok "
                                              f"{money(turn.usage.cost_usd)}", "dim")))
        elif turn.stop_reason == "error":
            self.console.print(Text(f"error: {turn.detail}", style="red"))
            if self._scripted_model(turn.agent):
                self.console.print(f"{turn.agent} talks to a scripted model (a fixed list of replies, for tests and "
                                   "the offline demo); point its model: at an openai, anthropic or "
                                   "openai_compatible llm.model entry to talk freely", style="dim")
        elif turn.stop_reason != "final":
            self.console.print(Text(f"stopped ({turn.stop_reason}): {turn.detail}", style="yellow"))
        if self.editor is None:  # with the line editor, the toolbar pinned under the prompt says it
            self.console.print(status_text(model=view.model, turn=turn.usage, session=session.state.usage))

    def _wait(self, future: Future[Any], view: TurnView, session: Any) -> Any:
        live = Live(view, console=self.console, refresh_per_second=10, transient=True)
        live.start()
        cancelling = False
        try:
            while True:
                try:
                    try:
                        return future.result(timeout=0.05)
                    except TimeoutError:
                        pass
                    if self.desk.pending():
                        live.stop()
                        try:
                            self.desk.serve(self.ask)
                        finally:
                            live.start()
                except KeyboardInterrupt:
                    if not cancelling:
                        cancelling = True
                        self.loop.submit(session.cancel())
                        self.console.print("cancelling the turn…", style="yellow")
        finally:
            live.stop()

    def ask(self, request: Any) -> bool:
        """Show an approval request and read y/n; Ctrl-C answers no (a second one then cancels the turn)."""
        self.console.print(approval_view(request))
        while True:
            try:
                answer = parse_answer(self._read("approve? [y/N] "))
            except KeyboardInterrupt:
                answer = False
                self.console.print()
            if answer is not None:
                self.console.print("approved" if answer else "rejected", style="green" if answer else "red")
                return answer
            self.console.print("answer y or n", style="dim")

    def _read(self, prompt: str) -> str:
        try:
            line = input(prompt)
        except EOFError:
            return "n"
        if sys.stdin.isatty() and line.strip():  # an answer is not worth recalling
            forget_last_line()
        return line

    def show_resumed(self, limit: int = 3) -> None:
        turns = self.session.state.turns
        if len(turns) > limit:
            self.console.print(f"… {len(turns) - limit} earlier turns", style="dim")
        for turn in turns[-limit:]:
            self.console.print(Text(f"{turn.agent.rpartition(':')[2]}> {turn.prompt}", style="bold"))
            if turn.answer:
                self.console.print(Markdown(turn.answer))
            elif turn.stop_reason != "final":
                self.console.print(f"({turn.stop_reason})", style="dim")


def run(args: argparse.Namespace) -> int:
    """The CLI handler of ``wippy console``."""
    from ..app import App

    from ..registry import AppSettings

    console = Console(highlight=False)
    settings = AppSettings.load(args.app, store=args.store, node=args.node)
    handlers = route_logs(console, Path(settings.root) / ".wippy" / "console.log")
    loop = LoopThread()
    app = session = shell = None
    release: Callable[[], None] = lambda: None
    desk = ApprovalDesk()
    try:
        # recover=False: a resumed session is attached before any recovery could run (and park) it
        app = loop.call(App.open(settings=settings, watch=True, follow=True, recover=False, claim_interval=0,
                                 publish=None))
        app.security.approver = with_example_results(app, desk.approver)
        sessions = app.sessions
        if args.resume:
            release = lock_session(Path(settings.root), args.resume)
            session = loop.call(sessions.resume(args.resume))
            if args.agent:
                loop.call(session.use(args.agent))
        else:
            session = loop.call(sessions.open(args.agent))
            release = lock_session(Path(settings.root), session.id)
        shell = ConsoleShell(app, session, loop=loop, console=console, desk=desk)
        shell.release = release
        if sys.stdin.isatty():
            shell.editor = LineEditor(history=history_file(app), toolbar=shell.toolbar,
                                      completer=SlashCompleter(lambda: COMMANDS.keys(), shell.ids))
        what = "resumed" if args.resume else "new"
        console.print(Text.assemble(("wippy console", "bold"), f" · {what} session ", (session.id, "bold cyan"),
                                    f" · agent {session.agent} ({shell.model_name()})",
                                    (" · /help lists commands, Ctrl-D leaves", "dim")))
        if shell.offline():
            console.print("This agent runs on the offline model (no network, no key). For a real model, point its "
                          "model: at an llm.model entry: provider openai (OPENAI_API_KEY), anthropic "
                          "(ANTHROPIC_API_KEY) or openai_compatible with base_url http://localhost:11434/v1 "
                          "(Ollama). agents/models.yaml has all three, commented out: uncomment one (it hot-loads) and "
                          "`/model app.models:openai` switches this session.",
                          style="dim")
        if args.resume:
            shell.show_resumed()
            if session.state.pending is not None:
                console.print(f"finishing the interrupted turn: {session.state.pending}", style="dim")
                shell.run_turn(None)
        shell.repl()
        session = shell.session
        return 0
    finally:
        desk.close()
        try:
            if session is not None:
                loop.call(session.close())
                console.print(Text.assemble("session ", (session.id, "bold cyan"), " saved · continue with: ",
                                            (f"wippy console --resume {session.id}", "bold")))
            if app is not None:
                loop.call(app.close())
        finally:
            (shell.release if shell is not None else release)()
            loop.close()
            unroute_logs(handlers)
