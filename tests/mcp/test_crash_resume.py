"""A journaled MCP call is never made again: SIGKILL of `wippy agent run` after it, rerun resumes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from .conftest import calls_made, counter, mcp_app

SLOW = {"namespace": "app.tools", "entries": [
    {"name": "slow", "kind": "function.lua", "meta": {"type": "tool", "description": "Takes a while"},
     "idempotent": True, "modules": ["time"], "input_schema": {"type": "object"},
     "source": "return {handler = function(a) time.sleep(1.5) return 'slept' end}"}]}

SCRIPT = [{"text": "bumping. ", "tool_calls": [{"name": "bump", "arguments": {"note": "once"}}]},
          {"text": "waiting. ", "tool_calls": [{"name": "slow", "arguments": {}}]},
          {"text": "Bumped once."}]


def _ok_rows(db: Path, task_id: str) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("select count(*) from journal where task_id = ? and status = 'ok'", (task_id,)).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def test_sigkill_after_an_mcp_call_then_resume_does_not_call_the_server_again(tmp_path):
    app = tmp_path / "app.yaml"
    app.write_text(mcp_app(SCRIPT, servers=[counter(tmp_path)], tools=["app.mcp:counter/bump", "app.tools:slow"],
                           extra=[SLOW]), encoding="utf-8")
    db = tmp_path / "cli.db"
    cmd = [sys.executable, "-m", "wippy_agents.cli", "agent", "run", "app.agents:a", "bump it", "--task-id", "k1",
           "--app", str(app), "--store", f"sqlite:///{db}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while _ok_rows(db, "k1") < 3:  # model, tool:bump, model: the slow tool runs now
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
        proc.stdout.close()
        proc.stderr.close()
    assert calls_made(tmp_path) == ["once"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=90)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("Bumped once.")
    assert calls_made(tmp_path) == ["once"]  # answered from the journal, not called again
