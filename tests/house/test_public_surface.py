"""Each package exports exactly the names we mean (STYLE 1): a change here is a deliberate API change."""

import importlib

import pytest

EXPORTS = {
    "store": {"AuditRecord", "NodeRecord", "StepRecord", "StepStatus", "Store", "TaskRecord", "TaskStatus", "VersionRecord",
              "open_store"},
    "registry": {"AppSettings", "CHANGED_TOPIC", "Change", "Changeset", "Entry", "EntryId", "FileWatcher",
                 "LoadResult", "Problem", "Registry", "Snapshot", "Subscriber", "Validator", "WriteGuard",
                 "code_validator", "kinds", "lint", "load_file", "load_sources"},
    "security": {"ACTIONS", "Actor", "ActorKind", "ApprovalRequest", "Approver", "Decision", "LuaGuard", "POLICIES_FIELD",
                 "Policy", "RUN_AS_FIELD", "RegistryGuard", "Rule", "Security", "as_actor", "evaluate", "glob_match", "install",
                 "is_internal", "lua_seams", "redact", "stamp_change", "stamp_entry"},
    "lua": {"CallContext", "CodeSpec", "EFFECTS", "KNOWN_MODULES", "Limits", "LoadedCode", "LuaHost", "LuaModule",
            "LuaOp", "LuaState", "OpGuard", "Services", "UNGUARDED", "StatePool", "builtin_modules", "compile_check", "drive", "entry_to_data", "from_lua",
            "parse_duration", "parse_size", "registry_services", "to_lua"},
    "tasks": {"StepScope", "current_step", "StepEvent", "TaskHistory", "task_history", "FINAL_STATUSES", "Metered",
              "NO_RETRY", "RetryPolicy", "RunInterrupted", "Runner", "SKIP_TYPE",
              "STORE_RETRY", "TaskContext", "TaskEngine"},
    "agents": {"AGENT_TASK_KIND", "AgentResult", "AgentService", "AgentSpec", "BUILTIN_TOOL_MODULES", "Budget",
               "ContextOverflow", "ContextWindow", "Delegate", "NodeLayers", "PromptError", "PythonTool",
               "SESSION_KIND", "STOP_REASONS", "Session", "SessionState", "Sessions", "StopReason", "ToolCallContext",
               "ToolError", "Toolset", "Turn", "build_toolset", "builtin_entries", "dispatch_tool", "install",
               "python_tool", "python_tools", "render_prompt", "truncate_text", "turn_task_id", "validate_arguments"},
    "console": set(),
    "mcp": {"McpClients", "ServerConfig", "expand", "install"},
    "observability": {"TracingOff", "install", "tracing_enabled"},
    "testing": {"FakeClock", "RespxTransport", "ScriptExhausted", "ScriptedCall", "ScriptedModel", "mock_http_client"},
}


@pytest.mark.parametrize("package", sorted(EXPORTS))
def test_each_package_exports_exactly_the_names_we_mean(package):
    module = importlib.import_module(f"wippy_agents.{package}")
    assert set(module.__all__) == EXPORTS[package]
    for name in module.__all__:
        assert hasattr(module, name), f"wippy_agents.{package}.{name} is in __all__ but missing"


def test_the_error_tree_has_one_root_and_control_signals_are_not_errors():
    from wippy_agents import errors

    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, (errors.WippyError, errors.ControlSignal)), name
    for signal in (errors.ProcessExit, errors.RunInterrupted, errors.Abort, errors.WorkflowAbort):
        # an `except Exception` cannot swallow a control signal
        assert issubclass(signal, errors.ControlSignal) and not issubclass(signal, Exception), signal
