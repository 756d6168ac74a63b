"""`wippy demo` is part of CI: it must verify every stage and exit 0."""

import subprocess
import sys


def test_wippy_demo_runs_offline_and_every_stage_verifies(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "wippy_agents.cli", "demo", "--fast"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "checks passed" in proc.stdout
