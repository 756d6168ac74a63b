"""Links, monitors and exit signals: the OTP rules, in one place.

Mixed into ``Node`` (which owns the process table ``_procs``). The rules, as in
the Erlang reference manual ("Processes", "Receiving Exit Signals"):

* A process that ends with reason R sends an exit signal R to every linked
  process, and ``DOWN(ref, pid, R)`` to every monitor — after its registered
  name is freed and it is gone from the process table.
* Receiving exit signal R from a link or from ``exit/2``:
  - R is ``"kill"`` and came from ``exit/2``: terminate with ``"killed"``
    (untrappable); a link signal ``"kill"`` is an ordinary error reason;
  - the receiver traps exits: becomes ``Message("EXIT", Exit(pid=from, reason=R))``;
  - R is ``"normal"``: ignored, unless ``exit(self, "normal")`` (then it ends normally);
  - otherwise: terminate with R.
* A process that is already exiting ignores further signals except ``kill``,
  which interrupts its clean-up.
* ``link`` to a dead pid sends the caller exit signal ``noproc``; ``monitor``
  of a dead pid delivers ``DOWN`` with ``noproc`` at once. Monitors stack.

Termination is cancellation: the kernel records the reason, answers pending
calls with ``ProcessDead`` at once, and cancels the process task; the task's
done-callback then runs ``_exited`` to notify links and monitors.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from wippy_agents.errors import ProcessDead, ProcessExit

from .messages import KILL, KILLED, NOPROC, NORMAL, Down, Exit, make_message

if TYPE_CHECKING:
    from .process import Process

__all__ = ["Signals", "reason_text"]

logger = logging.getLogger(__name__)


def reason_text(reason: Any) -> str:
    """A short human form of an exit reason for messages and logs."""
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
    return repr(reason)


class Signals:
    """Exit-signal, link and monitor handling for ``Node`` (see the module docstring)."""

    _procs: dict[str, Process]
    _names: dict[str, str]
    _hooks: list
    pid: str

    def _new_ref(self) -> str:
        raise NotImplementedError

    # -- exit signals -----------------------------------------------------------

    def _signal(self, target: Process, sender: str, reason: Any, linked: bool) -> None:
        if target._reason is not None:  # already exiting: only an explicit kill still acts
            task = target._task
            if reason == KILL and not linked and task is not None:
                target._reason = KILLED
                task.cancel()
                # Two cancels before the task runs merge into one, and the first may
                # be the one that started the clean-up we must now interrupt: cancel
                # again after the task has taken its pending step.
                task.get_loop().call_soon(_cancel_if_running, task)
            return
        if reason == KILL and not linked:
            self._terminate(target, KILLED)
        elif target.trap_exit:
            target.mailbox.put(make_message("EXIT", Exit(pid=sender, reason=reason), sender, None))
        elif reason == NORMAL:
            if sender == target.pid and not linked:
                self._terminate(target, NORMAL)
        else:
            self._terminate(target, reason)

    def _terminate(self, proc: Process, reason: Any) -> None:
        """Apply a fatal signal: fail pending calls now, then cancel the task."""
        proc._reason = reason
        mons = proc._monitors
        if mons:
            for w in mons.values():
                if type(w) is not str and not w.done():
                    w.set_exception(_dead(proc.pid, reason))
        if proc._task is not None:
            proc._task.cancel()

    def _on_done(self, proc: Process, task: asyncio.Task) -> None:
        """The task ended: work out the exit reason and run ``_exited``."""
        if task.cancelled():
            reason = proc._reason if proc._reason is not None else KILLED
        else:
            exc = task.exception()
            if proc._reason is not None:
                reason = proc._reason
                if exc is not None and not isinstance(exc, ProcessExit):
                    logger.warning("process %s failed during clean-up after exit %s", proc.pid,
                                   reason_text(reason), exc_info=exc)
            elif exc is None:
                reason = NORMAL
            elif isinstance(exc, ProcessExit):
                reason = exc.details.get("reason", NORMAL)
            else:
                reason = exc
                logger.error("process %s crashed: %s", proc.pid, reason_text(exc), exc_info=exc)
        self._exited(proc, reason)

    def _exited(self, proc: Process, reason: Any) -> None:
        pid = proc.pid
        procs = self._procs
        procs.pop(pid, None)
        if proc.name is not None:  # freed before anyone hears of the exit
            if self._names.get(proc.name) == pid:
                del self._names[proc.name]
        proc._reason = reason
        proc._task = None
        ack = proc._ack
        if ack is not None:
            proc._ack = None
            if not ack.done():
                ack.set_result(("exited", reason))
        links = proc._links
        if links:
            proc._links = None
            for peer_pid in links:
                peer = procs.get(peer_pid)
                if peer is not None:
                    peer._links.discard(pid)
                    self._signal(peer, pid, reason, linked=True)
        mons = proc._monitors
        if mons:
            for ref, w in mons.items():
                if type(w) is str:
                    watcher = procs.get(w)
                    if watcher is not None:
                        watcher._watching.pop(ref, None)
                        watcher.mailbox.put(
                            make_message("DOWN", Down(ref=ref, pid=pid, reason=reason), pid, None))
                elif not w.done():
                    w.set_exception(_dead(pid, reason))
        watching = proc._watching
        if watching:
            proc._watching = None
            for ref, target_pid in watching.items():
                target = procs.get(target_pid)
                if target is not None and target._monitors:
                    target._monitors.pop(ref, None)
        for hook in self._hooks:
            try:
                hook(pid, reason)
            except Exception:
                logger.exception("on_exit hook %r failed for %s", hook, pid)

    # -- links ------------------------------------------------------------------

    def _link(self, proc: Process, pid: str) -> None:
        if pid == proc.pid:
            return
        other = self._procs.get(pid)
        if other is None:
            other_pid = self._names.get(pid)
            other = self._procs.get(other_pid) if other_pid else None
        if other is None:
            self._signal(proc, pid, NOPROC, linked=True)
            return
        if proc._links is None:
            proc._links = set()
        if other._links is None:
            other._links = set()
        proc._links.add(other.pid)
        other._links.add(proc.pid)

    def _unlink(self, proc: Process, pid: str) -> None:
        if proc._links:
            proc._links.discard(pid)
        other = self._procs.get(pid)
        if other is not None and other._links:
            other._links.discard(proc.pid)

    # -- monitors ---------------------------------------------------------------

    def _monitor(self, watcher: Process, pid: str) -> str:
        ref = self._new_ref()
        target = self._procs.get(pid)
        if target is None and not pid.startswith("<"):
            target_pid = self._names.get(pid)
            target = self._procs.get(target_pid) if target_pid else None
        if target is None:
            watcher.mailbox.put(make_message("DOWN", Down(ref=ref, pid=pid, reason=NOPROC), pid, None))
            return ref
        if target._monitors is None:
            target._monitors = {}
        target._monitors[ref] = watcher.pid
        if watcher._watching is None:
            watcher._watching = {}
        watcher._watching[ref] = target.pid
        return ref

    def _demonitor(self, watcher: Process, ref: str, flush: bool) -> bool:
        target_pid = watcher._watching.pop(ref, None) if watcher._watching else None
        if target_pid is not None:
            target = self._procs.get(target_pid)
            if target is not None and target._monitors:
                target._monitors.pop(ref, None)
        if flush:
            watcher.mailbox.get_nowait("DOWN", lambda m: isinstance(m.payload, Down) and m.payload.ref == ref)
        return target_pid is not None


def _cancel_if_running(task: asyncio.Task) -> None:
    if not task.done():
        task.cancel()


def _dead(pid: str, reason: Any) -> ProcessDead:
    return ProcessDead(f"process {pid!r} exited ({reason_text(reason)}) before replying; "
                       "it may be restarted — retry or check its supervisor", pid=pid, reason=reason_text(reason))
