"""The public surface of wippy_agents.runtime is exactly what other rooms code against."""

import ast
import pathlib

import wippy_agents.runtime as runtime

EXPECTED = {
    "Node", "Process", "Actor", "Message", "Exit", "Down", "Mailbox", "MailboxStats", "ProcessInfo",
    "Supervisor", "SupervisorSpec", "ChildSpec", "copy_payload",
    "NORMAL", "SHUTDOWN", "KILL", "KILLED", "NOPROC", "Clock", "SystemClock", "SYSTEM_CLOCK",
}


def test_all_lists_exactly_the_public_names():
    assert set(runtime.__all__) == EXPECTED
    assert all(hasattr(runtime, name) for name in runtime.__all__)


def test_the_kernel_imports_nothing_of_ours_but_errors():
    root = pathlib.Path(runtime.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wippy_agents"):
                assert node.module == "wippy_agents.errors", f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("wippy_agents") for a in node.names), path.name
