"""The house rules of the composition root (ARCHITECTURE.md): security cannot fail open, whatever
the import order; Lua ops declare their effect and guard; no layer imports ``wippy_agents.app``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.house import guard_probe
from wippy_agents.errors import UsageError
from wippy_agents.lua import LuaModule, LuaOp, builtin_modules

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "wippy_agents"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_guarded_op_meets_security_and_a_deny_holds_in_any_import_order(tmp_path, seed):
    (tmp_path / "wippy.yaml").write_text("sources: [.]\n")
    (tmp_path / "t.yaml").write_text(guard_probe.APP)
    out = subprocess.run([sys.executable, "-m", "tests.house.guard_probe", str(seed), str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    # each guarded op asked security with its declared action (the llm/agent modules as a module permission)
    assert {"tool.call", "registry.read", "lua.module", "process.spawn"} <= set(report["owner_reached"])
    restricted = report["restricted"]
    assert "may not tool.call" in restricted["funcs.call"]
    assert "may not process.spawn" in restricted["process.spawn"]
    assert "may not registry.write" in restricted["registry.apply"]
    assert restricted["registry.get"] == "ok"
    for op in ("llm.generate", "llm.stream", "agent.run"):
        assert "lua.module" in report["restricted_reached"], op


def test_an_op_without_a_declared_effect_and_guard_fails_to_register():
    async def fn(ctx):
        return 1

    with pytest.raises(UsageError, match=r"op 'x\.y' is not declared"):
        LuaModule(name="x", lua="return {}", ops={"x.y": fn})
    with pytest.raises(TypeError):
        LuaOp(fn=fn, effect="read")  # the guard must be said, even when it is None
    with pytest.raises(UsageError, match="effect 'sideways'"):
        LuaOp(fn=fn, effect="sideways", guard=None)


def test_every_shipped_op_is_declared():
    for module in builtin_modules().values():
        for name, op in module.ops.items():
            assert isinstance(op, LuaOp), name


LAYERS = ("runtime", "store", "registry", "security", "lua", "tasks", "llm", "agents", "mcp", "observability")


def test_no_layer_below_the_composition_root_imports_it():
    """Only the terminal side (``console/``, ``cli.py``), which drives an App, may import it."""
    pattern = re.compile(r"^\s*(from wippy_agents\.app import|from wippy_agents import app\b|import wippy_agents\.app"
                         r"|from \.\.?app import|from \.\. import app\b)", re.M)
    offenders = [str(p.relative_to(ROOT)) for layer in LAYERS for p in (PACKAGE / layer).rglob("*.py")
                 if pattern.search(p.read_text())]
    assert offenders == []


def test_no_import_time_hooks_or_service_dictionary_remain():
    text = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py"))
    assert "_OPEN_HOOKS" not in text and "on_open" not in text and "extensions[" not in text
