"""The one error tree of wippy-agents, split by who is at fault.

::

    WippyError
    ├── UsageError                  the caller misused an API or gave bad input
    │   ├── InvalidPayload          a message payload that is not copyable data
    │   ├── NameTaken               registering a process name that is in use
    │   ├── UnknownName             sending to a name nobody registered
    │   ├── InvalidSpec             a supervisor / child spec that cannot start
    │   ├── ConfigError             bad app settings (wippy.yaml, store URL, ...)
    │   ├── RegistryError           the registry refused a change
    │   │   ├── EntryNotFound
    │   │   ├── ValidationError     schema, reference, duplicate, Lua compile ...
    │   │   ├── LoadError           a source file could not be read or parsed
    │   │   ├── StaleVersion        a changeset based on an outdated version
    │   │   └── VersionNotFound
    │   ├── PermissionDenied        a security policy said no
    │   ├── TaskNotFound
    │   ├── LuaCompileError
    │   ├── ToolError               a tool call failed; the message goes back to the model
    │   ├── PromptError             a prompt with an unfilled {{variable}}
    │   └── ContextOverflow         the system prompt alone does not fit the model's window
    ├── RuntimeFault                something failed while running
    │   ├── ProcessError
    │   │   ├── ProcessDead         the process is not alive (call to a dead pid)
    │   │   ├── CallTimeout         no reply within the timeout
    │   │   ├── ReceiveTimeout      no matching message within a receive timeout
    │   │   └── StartError          a process raised while starting
    │   ├── SupervisorError
    │   ├── LuaError                a Lua error raised by user code
    │   │   └── LuaLimitExceeded    memory, instruction or wall-clock limit hit
    │   ├── StoreError              the store failed or is unreachable
    │   │   ├── JournalCorrupt      a stored journal/task row cannot be decoded
    │   │   └── StepAlreadyRecorded a finished journal step written a second time
    │   ├── TaskError
    │   │   ├── NondeterminismError replay diverged from the journal
    │   │   ├── TaskStranded        a non-idempotent step started but never finished
    │   │   ├── TaskCancelled
    │   │   ├── LeaseLost           another node took over the task's lease
    │   │   ├── StepFailed          a step's function raised (non-wippy error, wrapped)
    │   │   └── TaskTimeout         waiting for a task's end took too long
    │   └── McpError                an MCP server failed to start, died, or broke the protocol
    └── ProviderError               a model provider failed
        ├── MissingApiKey
        ├── RateLimited
        └── ProviderTimeout

Control signals are not errors: they unwind a process or a run on purpose,
so they are ``BaseException``s (like ``asyncio.CancelledError``) and an
``except Exception`` -- in user-facing code or a Lua op -- cannot swallow
them::

    BaseException
    └── ControlSignal
        ├── ProcessExit             a process ends itself (``Process.stop``) or is being stopped
        ├── RunInterrupted          the engine is closing: the run ends at a step boundary, resumed later
        └── ControlAbort            carries a task-control error (cancel, lease lost, divergence)
            ├── Abort               ... through an agent's Lua driver
            └── WorkflowAbort       ... through a workflow's Lua driver

Every error carries a one-line message that quotes the ids involved with
``!r`` and says what to do; ``to_dict``/``from_dict`` let durable tasks store
and restore them (they also survive ``pickle``).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "WippyError",
    "UsageError",
    "InvalidPayload",
    "NameTaken",
    "UnknownName",
    "InvalidSpec",
    "ConfigError",
    "RegistryError",
    "EntryNotFound",
    "ValidationError",
    "LoadError",
    "StaleVersion",
    "VersionNotFound",
    "PermissionDenied",
    "TaskNotFound",
    "LuaCompileError",
    "ToolError",
    "McpError",
    "PromptError",
    "ContextOverflow",
    "RuntimeFault",
    "ProcessError",
    "ProcessDead",
    "CallTimeout",
    "ReceiveTimeout",
    "StartError",
    "SupervisorError",
    "LuaError",
    "LuaLimitExceeded",
    "StoreError",
    "JournalCorrupt",
    "StepAlreadyRecorded",
    "TaskError",
    "NondeterminismError",
    "TaskStranded",
    "TaskCancelled",
    "LeaseLost",
    "StepFailed",
    "TaskTimeout",
    "ProviderError",
    "MissingApiKey",
    "RateLimited",
    "ProviderTimeout",
    "error_from_dict",
    "ControlSignal",
    "ProcessExit",
    "RunInterrupted",
    "ControlAbort",
    "Abort",
    "WorkflowAbort",
]


class WippyError(Exception):
    """Root of every error this package raises on purpose.

    ``details`` holds structured context (file, line, entry id, field ...) that
    a tool, a CLI or a model can act on; the message alone must already be
    enough for a person.
    """

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __reduce__(self):  # pickle keeps message and details
        return (_rebuild, (type(self).__name__, self.message, self.details))

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "message": self.message, "details": _jsonable(self.details)}


class UsageError(WippyError):
    """The caller is at fault: bad input or misuse of an API."""


class InvalidPayload(UsageError):
    pass


class NameTaken(UsageError):
    pass


class UnknownName(UsageError):
    pass


class InvalidSpec(UsageError):
    pass


class ConfigError(UsageError):
    pass


class RegistryError(UsageError):
    pass


class EntryNotFound(RegistryError):
    pass


class ValidationError(RegistryError):
    pass


class LoadError(RegistryError):
    pass


class StaleVersion(RegistryError):
    pass


class VersionNotFound(RegistryError):
    pass


class PermissionDenied(UsageError):
    pass


class TaskNotFound(UsageError):
    pass


class LuaCompileError(UsageError):
    pass


class ToolError(UsageError):
    """A tool call could not be served (bad arguments, refused, raised, over a limit).

    The message is written for the model: it says what was wrong and how to fix
    the call; the agent loop sends it back as the tool's result.
    """


class PromptError(UsageError):
    pass


class ContextOverflow(UsageError):
    pass


class RuntimeFault(WippyError):
    """Something failed while running; not the caller's fault."""


class ProcessError(RuntimeFault):
    pass


class ProcessDead(ProcessError):
    pass


class CallTimeout(ProcessError):
    pass


class ReceiveTimeout(ProcessError):
    pass


class StartError(ProcessError):
    pass


class SupervisorError(RuntimeFault):
    pass


class LuaError(RuntimeFault):
    pass


class LuaLimitExceeded(LuaError):
    pass


class StoreError(RuntimeFault):
    pass


class JournalCorrupt(StoreError):
    pass


class StepAlreadyRecorded(StoreError):
    pass


class TaskError(RuntimeFault):
    pass


class NondeterminismError(TaskError):
    pass


class TaskStranded(TaskError):
    pass


class TaskCancelled(TaskError):
    pass


class LeaseLost(TaskError):
    pass


class StepFailed(TaskError):
    pass


class TaskTimeout(TaskError):
    pass


class McpError(RuntimeFault):
    """An MCP server could not be started or reached, died mid-call, or answered outside the protocol."""


class ProviderError(WippyError):
    """A model provider failed (network, HTTP status, malformed reply)."""


class MissingApiKey(ProviderError):
    pass


class RateLimited(ProviderError):
    pass


class ProviderTimeout(ProviderError):
    pass


class ControlSignal(BaseException):
    """Root of the control signals (see the module docstring): not errors, never caught as ``Exception``."""

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class ProcessExit(ControlSignal):
    """Raised inside a process to end it with ``details["reason"]`` (Erlang ``exit/1``)."""


class RunInterrupted(ControlSignal):
    """Ends a run at a step boundary because the engine is closing.

    An interruption, not an error of the task: the task's status is left as
    is, so it is resumed later.
    """


class ControlAbort(ControlSignal):
    """Carries a task-control error through a Lua driver (which turns ``WippyError``s into ``nil, err``).

    The Lua code must not be able to catch a cancel or a divergence as ``nil, err``.
    """

    def __init__(self, error: BaseException | None = None, *, message: str | None = None) -> None:
        super().__init__(message if message is not None else ("" if error is None else str(error)))
        self.error = error


class Abort(ControlAbort):
    """A task-control error, or a run limit that ends a Lua agent (``limit``: the agents layer's
    ``LimitReached``), on its way out of an agent's Lua code."""

    def __init__(self, error: BaseException | None = None, *, limit: Any = None) -> None:
        super().__init__(error, message=None if error is not None else (limit.detail if limit else ""))
        self.limit = limit


class WorkflowAbort(ControlAbort):
    """A task-control error on its way out of a workflow's Lua code (tasks layer)."""


_BY_NAME: dict[str, type[WippyError]] = {}


def _register(cls: type[WippyError]) -> None:
    _BY_NAME[cls.__name__] = cls
    for sub in cls.__subclasses__():
        _register(sub)


def _rebuild(name: str, message: str, details: dict[str, Any]) -> WippyError:
    _register(WippyError)
    return _BY_NAME.get(name, WippyError)(message, **details)


def error_from_dict(data: dict[str, Any]) -> WippyError:
    """Rebuild an error stored with ``WippyError.to_dict``."""
    return _rebuild(data.get("type", "WippyError"), data.get("message", ""), data.get("details") or {})


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)
