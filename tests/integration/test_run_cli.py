"""`wippy run` runs the seed example as a service and stops cleanly; `wippy call` prints JSON (SPEC §5, §9)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest
import yaml

WORKER = """
return {handler = function()
  local inbox = process.inbox()
  process.registry.register("worker-1")
  while true do
    local msg = inbox:receive()
    if msg:topic() == "task" then
      local task = msg:payload()
      if task.data == "crash" then error("task " .. task.id .. " failed") end
      process.send(msg:from(), "done", {id = task.id, by = process.pid()})
    end
  end
end}
"""

DRIVER = """
return {handler = function()
  local pid = process.spawn("app.workers:handler", "app:processes")
  process.send(pid, "task", {id = 1, data = "crash"})
  process.monitor(pid)
  local inbox, events = process.inbox(), process.events()
  local r = channel.select{inbox:case_receive(), events:case_receive(), time.after("5s"):case_receive()}
  local ev = r.value
  log.info("seed: observed event", {kind = ev.kind, from_spawned = ev.from == pid, error = ev.result.error})
  local new
  for i = 1, 500 do
    new = process.registry.lookup("worker-1")
    if new and new ~= pid then break end
    time.sleep("10ms")
  end
  log.info("seed: restarted by host", {restarted = new ~= nil and new ~= pid})
  process.send(new, "task", {id = 2, data = "ok"})
  local done = inbox:receive()
  log.info("seed: done", {id = done:payload().id, by_new = done:payload().by == new})
  process.events():receive()   -- stay up until the node stops (CANCEL)
end}
"""


# the same seed example, run by `wippy call` as a function.lua (SPEC §5: code always runs in a process)
SEED_FN = DRIVER.replace(
    "  process.events():receive()   -- stay up until the node stops (CANCEL)\n",
    "  return {kind = ev.kind, from_spawned = ev.from == pid, error = ev.result.error, restarted = new ~= pid,\n"
    "          done = done:payload().id, by_new = done:payload().by == new, me = process.pid()}\n")


def _write_app(tmp_path) -> str:
    app = tmp_path / "app"
    (app / "src").mkdir(parents=True)
    (app / "wippy.yaml").write_text(yaml.safe_dump({"sources": ["src"], "store": f"sqlite:///{tmp_path}/state.db"}))
    entries_app = {"namespace": "app", "entries": [
        # the seed restarts its crashed worker through the host: it opts in (hosts default to temporary)
        {"name": "processes", "kind": "process.host", "restart": "transient"},
        {"name": "driver", "kind": "process.lua", "source": DRIVER, "modules": ["time", "log"]},
        {"name": "seed", "kind": "process.service", "process": "driver", "host": "processes",
         "restart": {"policy": "transient"}},
    ]}
    workers = {"namespace": "app.workers", "entries": [
        {"name": "handler", "kind": "process.lua", "source": WORKER},
    ]}
    tools = {"namespace": "app.tools", "entries": [
        {"name": "add", "kind": "function.lua", "source": "return {handler = function(a) return a.a + a.b end}"},
        {"name": "seed", "kind": "function.lua", "source": SEED_FN, "modules": ["time", "log"]},
        {"name": "refuse", "kind": "function.lua",
         "source": "return {handler = function(a) return nil, 'no ' .. a.what end}"},
        {"name": "explode", "kind": "function.lua", "source": "return {handler = function() error('kaboom') end}"},
        {"name": "shape", "kind": "function.lua",
         "source": "return {handler = function(a) return {list = {1, 2}, name = a.name, nested = {ok = true}} end}"},
    ]}
    (app / "src" / "app.yaml").write_text(yaml.safe_dump(entries_app))
    (app / "src" / "workers.yaml").write_text(yaml.safe_dump(workers))
    (app / "src" / "tools.yaml").write_text(yaml.safe_dump(tools))
    return str(app)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("WIPPY_DEBUG", None)
    return env


def _wippy(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wippy_agents.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd, env=_env())


@pytest.fixture
def app_dir(tmp_path):
    return _write_app(tmp_path)


def test_wippy_run_runs_the_seed_example_and_stops_cleanly_on_sigterm(app_dir, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "wippy_agents.cli", "run", "--app", app_dir],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=_env())
    lines: queue.Queue = queue.Queue()
    seen: list[str] = []
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True)
    reader.start()

    def wait_for(text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen.append(line)
            if text in line:
                return line
        proc.kill()
        raise AssertionError(f"no line with {text!r} within {timeout}s; got:\n" + "".join(seen))

    with proc:
        try:
            event = wait_for("seed: observed event")
            assert "'kind': 'EXIT'" in event and "'from_spawned': True" in event and "task 1 failed" in event
            assert "'restarted': True" in wait_for("seed: restarted by host")
            done = wait_for("seed: done")
            assert "'id': 2" in done and "'by_new': True" in done
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, "".join(seen)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(timeout=5)
    while not lines.empty():
        seen.append(lines.get())
    text = "".join(seen)
    assert "stopped" in text and "Traceback" not in text
    # one line per record: every line starts with a time stamp
    assert all(line[:2].isdigit() and line[2] == ":" for line in seen if line.strip())


def test_wippy_call_prints_the_first_return_value_as_json(app_dir, tmp_path):
    out = _wippy("call", "--app", app_dir, "app.tools:add", '{"a": 1, "b": 2}', cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == 3
    out = _wippy("call", "--app", app_dir, "app.tools:shape", '{"name": "x"}', cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"list": [1, 2], "name": "x", "nested": {"ok": True}}


def test_wippy_call_runs_the_seed_example_in_a_function(app_dir, tmp_path):
    out = _wippy("call", "--app", app_dir, "app.tools:seed", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["kind"] == "EXIT" and got["from_spawned"] is True and "task 1 failed" in got["error"]
    assert got["restarted"] is True and got["done"] == 2 and got["by_new"] is True
    assert got["me"].startswith("<")


@pytest.mark.parametrize("entry, arg, needle", [
    ("app.tools:refuse", '{"what": "way"}', "no way"),
    ("app.tools:explode", None, "kaboom"),
    ("app.tools:add", "{not json", "not valid JSON"),
    ("app.tools:missing", None, "app.tools:missing"),
])
def test_wippy_call_errors_go_to_stderr_with_a_non_zero_exit(app_dir, tmp_path, entry, arg, needle):
    out = _wippy("call", "--app", app_dir, entry, *([arg] if arg is not None else []), cwd=tmp_path)
    assert out.returncode != 0
    assert out.stdout == ""
    assert needle in out.stderr and "Traceback" not in out.stderr
    assert len([line for line in out.stderr.splitlines() if line.startswith("wippy: error")]) == 1
