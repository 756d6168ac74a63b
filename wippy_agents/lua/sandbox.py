"""Sandboxed Lua 5.4 states: a whitelisted environment under hard limits.

One ``LuaState`` wraps one fresh ``lupa.lua54.LuaRuntime`` (one per function
call, one per process).  It is created with ``register_eval=False``,
``register_builtins=False``, an attribute filter that refuses every Python
attribute, ``encoding=None`` (so no Python ``str`` ever becomes a userdata)
and ``max_memory``.  ``bootstrap.lua`` then runs once with full access,
captures what it needs as locals, builds the safe environment and removes
``python``, ``debug``, ``io``, ``package``, ``load`` ... from the real globals.
User code only ever sees environments made by ``new_env``: safe
``string``/``table``/``math``/``utf8``/``coroutine``, ``os.time/clock/date/
difftime``, the base functions without ``collectgarbage``/``dofile``/
``loadfile``, ``load`` for text only (mode ``"t"``, default env = the sandbox),
``setmetatable`` without ``__gc``, and the string metatable hidden behind
``__metatable = false``.

Size (a Lua process is a state, and 10,000 may wait at once): the bootstrap
holds only what every state needs.  The pattern guard (``patterns.lua``),
the module wrappers (``module_key``) and their rarely used parts
(``trusted_part``) are loaded into a state the first time its code uses them,
as bytecode that the bootstrap gets from ``_fetch`` -- with ``time.monotonic``
the only Python callables in a state, both upvalues of trusted bootstrap code
that user code cannot reach, and ``_fetch`` returns only our own bytecode.  A
call's library tables (``string``, ``math`` ...) are copied from private
templates the first time its code names them, so ``rawget(_G, "math")`` and
``pairs(_G)`` do not show a library before that (``math`` itself does).

Limits and how each holds:

* memory: lupa's ``max_memory``.  A memory error caught by ``pcall`` trips
  the limit anyway, so the code cannot keep running at the ceiling.
* instructions: a count hook on every thread (``coroutine.create``/``wrap``
  install it, 5.4 does not inherit hooks).  Once spent, the hook re-arms to
  fire on *every* instruction and ``pcall``/``xpcall``/``coroutine.resume``
  re-raise after returning, so the error cannot be swallowed.
* wall clock: the same hook compares ``time.monotonic()`` with the deadline
  while Lua computes (every 8th hook call: the clock is a Python call, and
  Lua threads computing in parallel would contend for the GIL); the driver
  bounds every host wait with the remaining time, and the worker watchdog
  answers a call that is still running past its deadline (``workers.py``).  A hook cannot interrupt a C function, and the only C functions whose
  running time is not linear in memory-bounded input are the pattern
  matchers (``string.find('a'*40000, ('a*'):rep(40)..'b')`` runs for
  minutes).  So ``string.find/match/gmatch/gsub`` estimate the matcher's
  worst case as ``items * n ** k`` steps (``k`` = quantifiers that can
  backtrack, ``%b`` and back references, plus one for an unanchored scan
  over ``n`` start positions).  Under ``MAX_PATTERN_STEPS`` the C matcher
  runs directly.  If only the unanchored scan is too costly, the pattern is
  run anchored from each start position in a Lua loop that checks the clock
  between positions (same results, interruptible).  If even one anchored
  attempt could exceed the bound, the call raises a clear error telling the
  author to simplify, anchor, split the input or use ``plain=true``.
  ``table.move`` ranges are capped; ``load`` is capped in size;
  ``string.rep`` of an empty string (no allocation, then 2^62 empty copies
  in C) returns at once; other C functions are linear in their
  (memory-capped) input.  Residual: ``table.sort`` of a few million plain
  values without a comparator is O(n log n) in C (~1-2 s at the 64 MiB
  default) and can overrun a short wall-clock limit by that much.
* ``__gc`` metamethods are refused: finalizers run with hooks disabled (and
  at ``lua_close``), so an endless one would hang the node.

* no user code ever runs with hooks disabled: an error raised by the hook
  reaches an ``xpcall`` message handler while still inside the hook, so the
  wrapper skips the user's handler once a limit tripped; a coroutine killed
  by the hook is never closed (its ``__close`` handlers would run unhooked).

A limit hit raises ``LuaLimitExceeded`` for that call; the state is then
spent (``closed``) and other states are unaffected.  ``pool.py`` explains
when a state that ended cleanly may serve another call.
"""

from __future__ import annotations

import functools
import hashlib
import random
import secrets
import threading
import time
from importlib import resources
from typing import Any, Mapping

from lupa.lua54 import LuaError as _LupaError
from lupa.lua54 import LuaMemoryError, LuaRuntime

from wippy_agents.errors import LuaCompileError, LuaError, LuaLimitExceeded
from wippy_agents.lua.limits import Limits

__all__ = ["LuaState", "compile_check", "chunk_name", "module_key", "trusted_part", "HOOK_EVERY",
           "MAX_PATTERN_STEPS"]

HOOK_EVERY = 1000            # instructions between hook calls (overshoot bound)
MAX_PATTERN_STEPS = 2_000_000  # worst-case matcher steps allowed in one C call (~15 ms here)
MAX_LOAD_BYTES = 1 << 20
MAX_TABLE_MOVE = 10_000_000
_COMPILE_MEMORY = 64 << 20
_INF = float("inf")
_monotonic = time.monotonic

_BOOTSTRAP = resources.files("wippy_agents.lua").joinpath("bootstrap.lua").read_bytes()
_PATTERNS = resources.files("wippy_agents.lua").joinpath("patterns.lua").read_bytes()
# key -> stripped bytecode of our own trusted chunks (module wrappers, the
# pattern guard): what a state's bootstrap loads the first time code needs it.
_TRUSTED: dict[bytes, bytes] = {}


@functools.cache
def _bootstrap_bytecode() -> bytes:
    # Our own trusted chunk, compiled once per Python process: loading stripped
    # bytecode costs ~50 us against ~450 us for compiling the text each time.
    # User code can never load bytecode (its load() forces mode "t").
    lua = _runtime(_COMPILE_MEMORY)
    return lua.execute(b"return string.dump(assert(load(...)), true)", _BOOTSTRAP, b"=bootstrap", b"t")


def _trusted_bytecode(source: bytes, name: str) -> bytes:
    # Our module wrappers, compiled once per Python process like the bootstrap
    # (compiling their text in every new state cost more than creating the state).
    # Stripped: ~4.5 KB less per process for process+channel; their errors are
    # raised at level 2, so positions still point at the user's line.
    lua = _runtime(_COMPILE_MEMORY)
    return lua.execute(b"return string.dump(assert(load(...)), true)", source, b"=" + name.encode(), b"t")


@functools.lru_cache(maxsize=256)
def module_key(source: str, name: str) -> bytes:
    """The key under which a state fetches the compiled module wrapper ``source`` (compiled once).

    Keyed by content too: two hosts may give the same name different wrappers.
    """
    data = source.encode("utf-8")
    key = f"{name}@{hashlib.blake2s(data, digest_size=8).hexdigest()}".encode()
    if key not in _TRUSTED:
        _TRUSTED[key] = _trusted_bytecode(data, name)
    return key


_PARTS: dict[bytes, tuple[bytes, str]] = {b"=patterns": (_PATTERNS, "patterns")}


def trusted_part(name: str, source: str) -> None:
    """Register a rarely needed piece of a module wrapper: its Lua code gets it with ``part(name)``.

    ``source`` is our own trusted text (never user input); it is compiled on
    first need and runs in the modules' environment.
    """
    key = b"=" + name.encode()
    known = _PARTS.get(key)
    if known is not None and known[0] != source.encode():
        raise ValueError(f"trusted part {name!r} is already registered with other code")
    _PARTS[key] = (source.encode(), name)


def _fetch(key: bytes) -> bytes | None:
    # Called by the bootstrap (trusted code only; user code cannot reach it):
    # the bytecode of one of our own chunks, or None.
    code = _TRUSTED.get(key)
    if code is None and key in _PARTS:
        source, name = _PARTS[key]
        code = _TRUSTED[key] = _trusted_bytecode(source, name)
    return code


@functools.lru_cache(maxsize=64)
def _known_string(names: frozenset[str]) -> bytes:
    return (" " + " ".join(sorted(names)) + " ").encode()


def _hook_clock(killed: list[bool]) -> Any:
    # The count hook's clock (called on a worker thread); a killed state is past any deadline.
    # A closure over a flag, not a bound method: the runtime must not hold its LuaState (a
    # cycle would keep every dead state until the cycle collector runs).
    def clock() -> float:
        return _INF if killed[0] else _monotonic()
    return clock


_SEEDS = random.Random(secrets.randbits(128))


def _seed() -> tuple[int, int]:
    # math.random must not repeat across states/calls created in the same second: draws
    # from one generator seeded from the OS at import (no system call per state or call;
    # math.random is not a cryptographic generator either way)
    return _SEEDS.getrandbits(62), _SEEDS.getrandbits(62)


def _refuse_attribute(obj: Any, name: Any, is_setting: bool) -> Any:
    raise AttributeError("Python attributes are not accessible from the Lua sandbox")


def _runtime(max_memory: int) -> LuaRuntime:
    return LuaRuntime(
        register_eval=False,
        register_builtins=False,
        unpack_returned_tuples=True,
        encoding=None,
        attribute_filter=_refuse_attribute,
        max_memory=max_memory,
    )


def chunk_name(name: str) -> bytes:
    """Lua chunk name for error messages: ``=name`` unless already ``=``/``@`` prefixed."""
    if not name.startswith(("=", "@")):
        name = "=" + name
    return name.encode("utf-8", "replace")


def _line_of(message: str, name: str) -> int | None:
    head = name.lstrip("=@") + ":"
    if message.startswith(head):
        rest = message[len(head):]
        digits = rest.split(":", 1)[0]
        if digits.isdigit():
            return int(digits)
    return None


# One compile-only runtime per thread (creating a runtime costs ~10x a compile);
# it only ever runs Lua's load(), never the code, and keeps nothing between checks.
_COMPILER = threading.local()


def _compiler() -> Any:
    load = getattr(_COMPILER, "load", None)
    if load is None:
        load = _runtime(_COMPILE_MEMORY).eval(b"function(s, n) local f, e = load(s, n, 't', {}); return f, e end")
        _COMPILER.load = load
    return load


def compile_check(source: str | bytes, chunkname: str) -> None:
    """Compile ``source`` as Lua 5.4 text without running it.

    Raises ``LuaCompileError`` whose message is ``chunkname:line: reason`` and
    whose details hold ``chunk`` and ``line``.  Binary chunks are refused.
    """
    data = source.encode("utf-8") if isinstance(source, str) else bytes(source)
    name = chunk_name(chunkname)
    try:
        fn, err = _compiler()(data, name)
    except LuaMemoryError:
        _COMPILER.load = None  # start the next check on a fresh runtime
        raise LuaCompileError(f"{chunkname}: source too large to compile", chunk=chunkname, line=None) from None
    if fn is None:
        message = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)
        raise LuaCompileError(message, chunk=chunkname, line=_line_of(message, chunkname))


class LuaState:
    """One sandboxed Lua runtime with its limits; not thread-safe, sync only.

    >>> state = LuaState(Limits(timeout=1.0))
    >>> env = state.new_env("demo")
    >>> state.closed
    False
    """

    def __init__(self, limits: Limits = Limits(), *, pattern_steps: int = MAX_PATTERN_STEPS,
                 force_scan: bool = False) -> None:
        self.limits = limits
        self.lua = _runtime(limits.max_memory)
        self.closed = False
        self._kill = [False]    # kill(): the count hook trips at its next check (set from the loop)
        self.abandoned = False  # abandon(): a worker may still be inside; never touch it again
        self.deadline = _INF    # the wall-clock deadline of the running call or slice (monotonic)
        self.log_extra: dict[str, Any] | None = None  # tags of its log records (see driver.flush_logs)
        self.after_abandon: Any = None  # called with the state by the worker that leaves an abandoned call
        # execute() loads our bytecode straight from the Python buffer (lupa's own
        # load call, mode "bt"): no compiling of a loader, no bytecode string in the
        # state.  User code never reaches it; it is loaded by ctl.load, text only.
        self.ctl = self.lua.execute(_bootstrap_bytecode(), _hook_clock(self._kill), _fetch, HOOK_EVERY, pattern_steps,
                                    MAX_LOAD_BYTES, MAX_TABLE_MOVE, force_scan, *_seed(), _monotonic)
        self._ctl_slice = self.ctl[b"step_slice"]  # every resume and every wait: looked up once
        self._ctl_drain = self.ctl[b"drain_logs"]
        self._fns: dict[bytes, Any] | None = None  # the other ctl functions, cached once reused (_ctl)
        self.reused = False  # set by reset(): then compiled chunks are cached for the next reuse

    def _ctl(self, name: bytes) -> Any:
        # Each ctl[...] lookup is a call into Lua (~1-2 us); a pooled state that serves
        # call after call keeps them; a state used once (a process) keeps none alive.
        fns = self._fns
        if fns is None:
            return self.ctl[name]
        fn = fns.get(name)
        if fn is None:
            fn = fns[name] = self.ctl[name]
        return fn

    @property
    def run_entry(self) -> Any:
        """The bootstrap's entry runner: a thread of it runs a chunk's method (``LoadedCode``)."""
        return self._ctl(b"run_entry")

    @property
    def killed(self) -> bool:
        return self._kill[0]

    def kill(self) -> None:
        """Make the code stop at its next hook check (thread-safe: only sets a flag); the state is spent."""
        self._kill[0] = True
        self.closed = True

    def abandon(self) -> None:
        """The watchdog gave up on a call still running in C: spent, and the loop must not touch it."""
        self.abandoned = True
        self.kill()

    # -- environments and code -------------------------------------------
    def table(self, mapping: dict[bytes, Any] | None = None) -> Any:
        """A fresh Lua table from a mapping whose values are already Lua values."""
        return self.lua.table_from(mapping or {})

    def new_env(self, owner: str, *, modules: Mapping[bytes, bytes] | None = None, imports: Any = None,
                known: bytes | None = None) -> Any:
        """A fresh sandbox environment (one call into Lua).

        ``modules`` maps names to ``module_key``s, ``imports`` is a Lua table of
        alias -> loader (``library``), ``known`` a ``known_names`` string.
        """
        flat = [x for pair in modules.items() for x in pair] if modules else ()
        return self._ctl(b"new_env")(owner.encode("utf-8", "replace"), imports, known, *flat)

    def load(self, source: str | bytes, chunkname: str, env: Any) -> Any:
        """Compile user text in ``env``; raises ``LuaCompileError``."""
        data = source.encode("utf-8") if isinstance(source, str) else source
        try:
            fn, err = self._ctl(b"load")(data, chunk_name(chunkname), env, self.reused)
        except LuaMemoryError:
            raise LuaLimitExceeded(f"{chunkname}: memory limit exceeded while compiling") from None
        if fn is None:
            message = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)
            raise LuaCompileError(message, chunk=chunkname, line=_line_of(message, chunkname))
        return fn

    def library(self, chunk: Any) -> Any:
        """A lazy loader that runs a library chunk once and caches its value."""
        return self._ctl(b"library")(chunk)

    def new_thread(self, fn: Any) -> Any:
        """A hooked coroutine running ``fn``."""
        return self._ctl(b"new_thread")(fn)

    # -- limits ----------------------------------------------------------
    def start(self, deadline: float) -> None:
        """Reset the instruction budget and set the wall-clock deadline (monotonic)."""
        self.deadline = deadline
        self._ctl(b"start")(self.limits.max_instructions, deadline)

    def step(self, thread: Any, *args: Any) -> tuple[Any, ...]:
        """Resume ``thread`` once: ``("done", results)``, ``("request", op, args)`` or ``("error", msg)``.

        Raises ``LuaLimitExceeded`` if a limit tripped (the state is then closed).
        """
        if self.closed:
            raise LuaError("this Lua state was closed after an earlier limit error")
        try:
            out = self._ctl(b"step")(thread, *args)
        except LuaMemoryError:
            self.closed = True
            raise LuaLimitExceeded(f"memory limit exceeded ({self.limits.max_memory} bytes)") from None
        except _LupaError as exc:  # the driver's own step failed: treat as a fault of this state
            self.closed = True
            raise LuaError(f"Lua state failed: {exc}") from None
        if out[0] != b"request":
            # also on "done": a limit that tripped must fail the call even if
            # the code somehow finished before its next instruction
            self.check_limits()
        return out

    def step_slice(self, thread: Any, instructions: int | None, *args: Any) -> tuple[Any, ...]:
        """Resume ``thread`` once (the drivers' step, run on a Lua worker thread).

        ``("done", *results)``, ``("request" | "request+log", op, *args)`` or
        ``("error", message)``; with ``instructions`` a new slice starts (that
        budget, and ``self.deadline`` as its wall-clock deadline).  Raises ``LuaLimitExceeded`` when a limit tripped,
        ``LuaError`` if the state itself failed; either way the state is then closed.
        """
        if self.closed:
            raise LuaError("this Lua state was closed after an earlier limit error")
        try:
            out = self._ctl_slice(thread, instructions, self.deadline if instructions else None, *args)
        except LuaMemoryError:
            self.closed = True
            raise LuaLimitExceeded(f"memory limit exceeded ({self.limits.max_memory} bytes)", limit="memory") from None
        except _LupaError as exc:  # the driver's own step failed: treat as a fault of this state
            self.closed = True
            raise LuaError(f"Lua state failed: {exc}") from None
        if type(out) is not tuple:  # a single value ("done" with no results) is not a tuple
            out = (out,)
        if out[0] == b"error" or out[0] == b"done":
            # also on "done": a limit that tripped must fail the call even if the
            # code somehow finished before its next instruction
            self.check_limits()
        return out

    def check_limits(self) -> None:
        """Raise ``LuaLimitExceeded`` (and close) if any limit has tripped."""
        kind, _msg = self._ctl(b"exceeded")()
        if kind is None:
            return
        self.closed = True
        kind = kind.decode()
        detail = {
            "memory": f"memory limit exceeded ({self.limits.max_memory} bytes)",
            "instructions": f"instruction limit exceeded ({self.limits.max_instructions} instructions)",
            "timeout": f"wall-clock limit exceeded ({self.limits.timeout:g} s)",
        }[kind]
        raise LuaLimitExceeded(detail, limit=kind)

    @property
    def reusable(self) -> bool:
        """True when no limit tripped: the runtime may serve another call (see ``StatePool``)."""
        return not self.closed and self._ctl(b"exceeded")()[0] is None

    def reset(self, limits: Limits) -> None:
        """Prepare a reused state for a new call: new limits, pristine library tables, reseeded PRNG."""
        if limits.max_memory != self.limits.max_memory:
            raise ValueError("a pooled state keeps its memory limit")
        self.limits = limits
        self.reused = True
        if self._fns is None:
            self._fns = {}
        self._ctl(b"fresh_libs")(*_seed())

    def known_names(self, names: frozenset[str]) -> bytes:
        """Every module name as the string ``new_env`` takes (" json log ... ")."""
        return _known_string(names)

    def drain_logs(self) -> tuple[list[tuple[str, str, Any, float]], int]:
        """Records ``(level, message, fields, written)`` that ``log.*``/``print`` buffered since the
        last drain (``written``: ``time.monotonic()`` of the call), and how many were dropped."""
        buf, dropped = self._ctl_drain()
        if buf is None:
            return [], dropped
        records = []
        for i in range(1, len(buf) + 1):
            rec = buf[i]
            records.append((rec[1].decode(), rec[2].decode("utf-8", "replace"), rec[3], rec[4]))
        return records, dropped
