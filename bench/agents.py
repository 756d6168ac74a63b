"""Agent framework overhead per turn, side by side: wippy vs OpenAI Agents SDK vs LangGraph.

Run from the repo root: .venv/bin/python bench/agents.py [--quick]
Needs (bench only): pip install openai-agents langgraph langgraph-checkpoint-sqlite

A "turn" is one model call that asks for one tool call, plus that tool call;
the model and the tool are instant (a scripted/fake model, a no-op Python
tool), so what is measured is the framework: context building, token counting,
tool dispatch, argument validation and (when persisted) the durable record.
Each run is N-1 tool-calling turns and a final answer; the figure is wall time
(start -> result) / N, the median of several runs, for N = 20 and N = 200.

* wippy-traced: ``wippy`` with OpenTelemetry on (``Tracing`` with a batch
  processor and an exporter that drops the spans): the cost of the spans of
  every task, turn, step, model and tool call; the ratio to ``wippy`` is printed.
* wippy-loop: the same turn loop with steps that just run (no task engine, no
  journal): what the agent layer itself costs per turn.
* wippy: an ``agent`` task on ``app.tasks`` (a process on the node; every model
  reply and tool result a journal step), store ``sqlite`` (file, WAL) = persisted,
  ``sqlite:///:memory:`` = not persisted (same code path, in-memory journal).
  Runs follow each other in one open App (new task id, new scripted model each).
* wippy-floor: only the store round trips a journaled turn cannot do without:
  two lease-guarded ``journal_write`` calls (model reply, tool result), each of
  which must land before the next step runs (SPEC §7).
* OpenAI Agents SDK: ``Runner.run`` with ``agents.testing.ScriptedModel``,
  without a session and with ``SQLiteSession`` (file).
* LangGraph: the prebuilt ReAct agent (``create_react_agent``) with a fake chat
  model, without a checkpointer and with ``SqliteSaver`` (file).

Each framework runs in its own subprocess (no shared globals or threads).
Last, one tool call through ``dispatch_tool``: a Lua tool vs an MCP tool (a
``MCPServer`` child over stdio), the MCP round trip's overhead as a ratio.
Targets (issue 6): <= 300 us per journaled wippy turn at 20 turns; the 200-turn
figure <= 1.2x the 20-turn one (work per turn must not grow with the history).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# This file is called agents.py: drop its folder from the path so `import agents`
# finds the OpenAI Agents SDK, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

PROMPT = "Call the noop tool until told otherwise."


class Clock:
    """Wall and CPU (all threads of the process) time of one run, per turn."""

    def __init__(self, turns: int) -> None:
        self.turns = turns
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def start(self) -> None:
        self._t, self._c = time.perf_counter(), time.process_time()

    def stop(self, keep: bool) -> None:
        wall, cpu = time.perf_counter() - self._t, time.process_time() - self._c
        if keep:
            self.wall.append(wall / self.turns)
            self.cpu.append(cpu / self.turns)

    def result(self) -> dict[str, list[float]]:
        return {"wall": self.wall, "cpu": self.cpu}


# -- wippy ------------------------------------------------------------------------
APP = """
namespace: bench.security
entries:
  - name: open
    kind: security.policy
    rules: [{effect: allow, actions: [tool.call], resources: ["*"]}]
---
namespace: bench.models
entries:
  - name: m
    kind: llm.model
    provider: scripted
    context_window: 1000000
    script: []
---
namespace: bench.agents
entries:
  - name: a
    kind: agent
    model: bench.models:m
    prompt: "You are a benchmark agent. Call tools."
    tools: [bench.tools:noop]
    policies: [bench.security:open]
    max_turns: 100000
"""


def wippy_loop(turns: int, runs: int, persisted: bool) -> dict[str, list[float]]:
    """The turn loop alone: the same AgentLoop with a context whose steps just run (no task engine)."""
    import asyncio

    sys.path.insert(0, str(ROOT))
    from wippy_agents.agents.loop import AgentLoop
    from wippy_agents.app import App
    from wippy_agents.store.base import TaskRecord
    from wippy_agents.testing import ScriptedModel

    _noop_tool()
    script = _script(turns)

    class BareContext:
        def __init__(self, task: TaskRecord) -> None:
            self.task = task

        async def step(self, name, fn, *, idempotent=False, retry=None):
            value = await fn()
            return getattr(value, "value", value) if type(value).__name__ == "Metered" else value

    async def main() -> dict[str, list[float]]:
        clock = Clock(turns)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "app.yaml"
            path.write_text(APP, encoding="utf-8")
            async with await App.open(path, store="sqlite:///:memory:") as app:
                service = app.agents
                for r in range(runs + 1):
                    service.use_provider("bench.models:m", ScriptedModel(script))
                    task = TaskRecord(id=f"run{r}", kind="agent", target="bench.agents:a", input={"prompt": PROMPT})
                    clock.start()
                    result = await AgentLoop(service, BareContext(task)).run()
                    clock.stop(keep=r > 0)
                    assert result["stop_reason"] == "final" and result["turns"] == turns, result
        return clock.result()

    return asyncio.run(main())


def _noop_tool() -> None:
    from wippy_agents.agents import python_tool

    @python_tool("bench.tools:noop", description="does nothing", idempotent=True,
                 input_schema={"type": "object", "properties": {"i": {"type": "integer"}}, "required": ["i"]})
    async def noop(args, ctx):
        return "ok"


def _script(turns: int) -> list[dict]:
    usage = {"input_tokens": 10, "output_tokens": 5}  # the model's own counting is not framework work
    script = [{"tool_calls": [{"name": "noop", "arguments": {"i": i}}], "usage": usage} for i in range(turns - 1)]
    return script + [{"text": "done", "usage": usage}]


def wippy(turns: int, runs: int, persisted: bool, *, traced: bool = False) -> dict[str, list[float]]:
    import asyncio

    sys.path.insert(0, str(ROOT))
    from wippy_agents.app import App
    from wippy_agents.testing import ScriptedModel

    _noop_tool()
    script = _script(turns)

    async def main() -> dict[str, list[float]]:
        clock = Clock(turns)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "app.yaml"
            path.write_text(APP, encoding="utf-8")
            store = f"sqlite:///{tmp}/state.db" if persisted else "sqlite:///:memory:"
            async with await App.open(path, store=store) as app:
                if traced:
                    _trace(app)
                service = app.agents
                for r in range(runs + 1):  # the first run warms up imports and caches
                    service.use_provider("bench.models:m", ScriptedModel(script))
                    clock.start()
                    result = await service.run("bench.agents:a", PROMPT, task_id=f"run{r}")
                    clock.stop(keep=r > 0)
                    assert result.stop_reason == "final" and result.turns == turns, result
            out = clock.result()
            if persisted:
                out["storage"] = _storage(f"{tmp}/state.db", runs + 1)
        return out

    return asyncio.run(main())


def _storage(db_path: str, runs: int) -> dict[str, float]:
    """What one run's task left in the store: the bytes of its journal and task rows, and the
    file (after a TRUNCATE checkpoint) divided by the runs it holds."""
    import sqlite3

    db = sqlite3.connect(db_path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = db.execute("SELECT * FROM journal WHERE task_id = 'run1'").fetchall()
        rows += db.execute("SELECT * FROM tasks WHERE id = 'run1'").fetchall()
        payload = sum(len(v) if isinstance(v, (str, bytes)) else 8 for r in rows for v in r if v is not None)
        steps = db.execute("SELECT COUNT(*) FROM journal WHERE task_id = 'run1'").fetchone()[0]
    finally:
        db.close()
    return {"row_bytes": payload, "file_bytes_per_run": Path(db_path).stat().st_size / runs, "steps": steps}


def _trace(app) -> None:
    """Tracing on as in production (a batch processor), exporting to a sink that drops the spans."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from wippy_agents.observability.tracing import Tracing

    class Drop(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    Tracing.install(app, tracer_provider=provider)


def wippy_traced(turns: int, runs: int, persisted: bool) -> dict[str, list[float]]:
    """``wippy`` with OpenTelemetry spans on every task, turn, step, model and tool call."""
    return wippy(turns, runs, persisted, traced=True)


MCP_APP = """
namespace: bench.tools
entries:
  - name: lua_echo
    kind: function.lua
    meta: {type: tool, description: "echo"}
    source: "return {handler = function(a) return a.text end}"
    input_schema: {type: object, properties: {text: {type: string}}, required: [text]}
---
namespace: bench.mcp
entries:
  - name: echo
    kind: mcp.server
    command: [PYTHON, SERVER]
"""

MCP_SERVER = """
from mcp.server.mcpserver import MCPServer
server = MCPServer("echo")


@server.tool(description="echo")
def echo(text: str) -> str:
    return text


server.run()
"""


def mcp_vs_lua(calls: int) -> dict[str, list[float]]:
    """Seconds per tool call through ``dispatch_tool``: a Lua tool, and an MCP tool over stdio."""
    import asyncio

    sys.path.insert(0, str(ROOT))
    from wippy_agents.agents import ToolCallContext, dispatch_tool
    from wippy_agents.app import App

    async def main() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"lua": [], "mcp": []}
        with tempfile.TemporaryDirectory() as tmp:
            server = Path(tmp) / "echo_server.py"
            server.write_text(MCP_SERVER, encoding="utf-8")
            path = Path(tmp) / "app.yaml"
            path.write_text(MCP_APP.replace("PYTHON", sys.executable).replace("SERVER", str(server)), encoding="utf-8")
            async with await App.open(path, store="sqlite:///:memory:") as app:
                ctx = ToolCallContext(app=app)
                for key, entry_id in (("lua", "bench.tools:lua_echo"), ("mcp", "bench.mcp:echo/echo")):
                    entry = app.registry.get(entry_id)
                    for _ in range(20):  # warm: the server is up, the Lua state pooled
                        await dispatch_tool(app, entry, {"text": "hi"}, ctx)
                    for _ in range(5):
                        t = time.perf_counter()
                        for _ in range(calls):
                            assert "hi" in str(await dispatch_tool(app, entry, {"text": "hi"}, ctx))
                        out[key].append((time.perf_counter() - t) / calls)
        return out

    return asyncio.run(main())


def wippy_floor(turns: int, runs: int, persisted: bool) -> dict[str, list[float]]:
    """The store floor under a journaled turn: its two steps' lease-guarded ``journal_write``
    round trips alone (a model reply and a tool result, each durable before the next step)."""
    import asyncio

    sys.path.insert(0, str(ROOT))
    from wippy_agents.store import open_store
    from wippy_agents.store.base import StepRecord, TaskRecord

    reply = {"text": "", "tool_calls": [{"id": "c", "name": "noop", "arguments": {"i": 1}}],
             "usage": {"input_tokens": 10, "output_tokens": 5}}

    async def main() -> dict[str, list[float]]:
        clock = Clock(turns)
        with tempfile.TemporaryDirectory() as tmp:
            store = await open_store(f"sqlite:///{tmp}/state.db" if persisted else "sqlite:///:memory:")
            try:
                for r in range(runs + 1):
                    task = f"run{r}"
                    await store.task_create(TaskRecord(id=task, kind="agent", target="a", input=None, owner="n",
                                                       status="running"))
                    clock.start()
                    for seq in range(1, 2 * turns + 1):
                        result = reply if seq % 2 else {"result": "ok"}
                        await store.journal_write(StepRecord(task_id=task, seq=seq, name="step", status="ok",
                                                             result=result, started_at=time.time(),
                                                             finished_at=time.time()), node="n")
                    clock.stop(keep=r > 0)
            finally:
                await store.close()
        return clock.result()

    return asyncio.run(main())


# -- OpenAI Agents SDK --------------------------------------------------------------
def openai_agents(turns: int, runs: int, persisted: bool) -> dict[str, list[float]]:
    import asyncio

    from agents import Agent, Runner, SQLiteSession, function_tool, set_tracing_disabled
    from agents.testing import ScriptedModel, assistant_message, function_call

    set_tracing_disabled(True)

    @function_tool
    def noop(i: int) -> str:
        """does nothing"""
        return "ok"

    async def main() -> dict[str, list[float]]:
        clock = Clock(turns)
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(runs + 1):
                steps = [[function_call("noop", {"i": i}, call_id=f"c{i}")] for i in range(turns - 1)]
                steps.append([assistant_message("done")])
                agent = Agent(name="bench", instructions="You are a benchmark agent. Call tools.", tools=[noop],
                              model=ScriptedModel(steps))
                session = SQLiteSession(f"run{r}", f"{tmp}/s{r}.db") if persisted else None
                clock.start()
                result = await Runner.run(agent, PROMPT, session=session, max_turns=turns + 1)
                clock.stop(keep=r > 0)
                assert result.final_output == "done"
                if session is not None:
                    session.close()
        return clock.result()

    return asyncio.run(main())


# -- LangGraph ---------------------------------------------------------------------
def langgraph(turns: int, runs: int, persisted: bool) -> dict[str, list[float]]:
    import warnings

    warnings.filterwarnings("ignore")
    import sqlite3

    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.prebuilt import create_react_agent

    class FakeToolModel(GenericFakeChatModel):
        def bind_tools(self, tools, **kwargs):  # the replies are scripted; tools need no binding
            return self

    @tool
    def noop(i: int) -> str:
        """does nothing"""
        return "ok"

    clock = Clock(turns)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(runs + 1):
            replies = [AIMessage(content="", tool_calls=[{"name": "noop", "args": {"i": i}, "id": f"c{i}"}])
                       for i in range(turns - 1)] + [AIMessage(content="done")]
            conn = sqlite3.connect(f"{tmp}/g{r}.db", check_same_thread=False) if persisted else None
            saver = SqliteSaver(conn) if conn is not None else None
            graph = create_react_agent(FakeToolModel(messages=iter(replies)), [noop], checkpointer=saver,
                                       prompt="You are a benchmark agent. Call tools.")
            config = {"recursion_limit": 2 * turns + 5, "configurable": {"thread_id": f"run{r}"}}
            clock.start()
            state = graph.invoke({"messages": [("user", PROMPT)]}, config)
            clock.stop(keep=r > 0)
            assert state["messages"][-1].content == "done"
            if conn is not None:
                conn.close()
    return clock.result()


FRAMEWORKS = {"wippy": wippy, "wippy-traced": wippy_traced, "wippy-loop": wippy_loop, "wippy-floor": wippy_floor, "openai-agents": openai_agents,
              "langgraph": langgraph}


def measure(name: str, turns: int, runs: int, persisted: bool) -> dict[str, list[float]] | str:
    """Run one configuration in a subprocess; per-turn seconds of each run, or an error line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", name, str(turns), str(runs),
           "1" if persisted else "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1800,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return f"failed: {tail}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    parser.add_argument("--json", action="store_true",
                        help="only the issue-17 figures: one JSON object on the last stdout line")
    parser.add_argument("--one", nargs=4, metavar=("NAME", "TURNS", "RUNS", "PERSISTED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        name, turns, runs, persisted = args.one
        if name == "mcp-vs-lua":
            print(json.dumps(mcp_vs_lua(int(turns))))
            return
        print(json.dumps(FRAMEWORKS[name](int(turns), int(runs), persisted == "1")))
        return
    runs20, runs200 = (5, 2) if args.quick else (15, 5)
    if args.json:
        return json_figures(runs20, runs200)
    rows = []
    for name in FRAMEWORKS:
        for persisted in ((False,) if name == "wippy-loop" else (True,) if name == "wippy-floor" else (False, True)):
            r20 = measure(name, 20, runs20, persisted)
            r200 = measure(name, 200, runs200, persisted)
            rows.append((name, persisted, r20, r200))
            print(f"  measured {name} persisted={persisted}", file=sys.stderr)
    print(f"\nFramework overhead per turn (scripted model, no-op tool): median of runs, wall clock and CPU of the "
          f"process (all threads); {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"Python {sys.version.split()[0]}\n")
    head = (f"{'framework':<15}{'store':<22}{'wall 20':>10}{'wall 200':>10}{'200/20':>8}"
            f"{'cpu 20':>10}{'cpu 200':>10}{'200/20':>8}")
    print(head)
    print("-" * len(head))
    store = {"wippy": ("sqlite journal (WAL)", "in-memory journal"),
             "wippy-traced": ("sqlite + OTel spans", "in-memory + OTel spans"),
             "wippy-loop": ("-", "no task engine"),
             "wippy-floor": ("2 journal_writes", "-"),
             "openai-agents": ("SQLiteSession", "no session"),
             "langgraph": ("SqliteSaver", "no checkpointer")}
    figures = {}
    for name, persisted, r20, r200 in rows:
        label = store[name][0 if persisted else 1]
        if isinstance(r20, str) or isinstance(r200, str):
            print(f"{name:<15}{label:<22}  {r20 if isinstance(r20, str) else r200}")
            continue
        w20, w200 = (statistics.median(r["wall"]) * 1e6 for r in (r20, r200))
        c20, c200 = (statistics.median(r["cpu"]) * 1e6 for r in (r20, r200))
        figures[(name, persisted)] = (w20, w200, c20, c200)
        print(f"{name:<15}{label:<22}{w20:>8.0f}us{w200:>8.0f}us{w200 / w20:>7.2f}x"
              f"{c20:>8.0f}us{c200:>8.0f}us{c200 / c20:>7.2f}x")
    wp = figures.get(("wippy", True))
    if wp:
        print(f"\nwippy journaled turn at 20 turns: {wp[0]:.0f} us wall, {wp[2]:.0f} us CPU (target <= 300 us); "
              f"200/20: {wp[1] / wp[0]:.2f} wall, {wp[3] / wp[2]:.2f} CPU (target <= 1.2)")
        floor, loop = figures.get(("wippy-floor", True)), figures.get(("wippy-loop", False))
        if floor and loop:
            print(f"  of which: the turn loop alone {loop[0]:.0f} us, the store floor (two journal_write round trips, "
                  f"one per step) {floor[0]:.0f} us, the task engine and the rest {wp[0] - loop[0] - floor[0]:.0f} us "
                  f"(wall, 20 turns)")
        traced = figures.get(("wippy-traced", True))
        if traced:
            print(f"  tracing on (OpenTelemetry SDK, batch processor): {traced[0] / wp[0]:.2f}x the wall time per "
                  f"journaled turn at 20 turns, {traced[2] / wp[2]:.2f}x CPU; off, nothing is wrapped or imported")
        for peer in ("openai-agents", "langgraph"):
            p = figures.get((peer, True))
            if p:
                print(f"  {peer} persisted costs {p[0] / wp[0]:.1f}x wippy's wall time per turn at 20 turns and "
                      f"{p[1] / wp[1]:.1f}x at 200 turns (CPU: {p[2] / wp[2]:.1f}x, {p[3] / wp[3]:.1f}x)")

    mcp = measure("mcp-vs-lua", 200, 0, False)
    if isinstance(mcp, str):
        print(f"\nMCP vs Lua tool call: {mcp}")
    else:
        lua, remote = statistics.median(mcp["lua"]) * 1e6, statistics.median(mcp["mcp"]) * 1e6
        print(f"\nTool call through dispatch_tool (validation, policy, run), median of 5 x 200 calls: Lua tool "
              f"{lua:.0f} us, MCP tool over stdio (MCPServer child process) {remote:.0f} us = {remote / lua:.1f}x")


def json_figures(runs20: int, runs200: int) -> None:
    """The issue-17 figures (µs per journaled turn, wall medians), peers persisted, same run."""
    med = statistics.median
    out: dict[str, object] = {"load": os.getloadavg()[0]}
    for key, name, turns, runs in (("turn_us_20", "wippy", 20, runs20), ("turn_us_200", "wippy", 200, runs200),
                                   ("langgraph_turn_us_20", "langgraph", 20, runs20),
                                   ("openai_agents_turn_us_20", "openai-agents", 20, runs20)):
        r = measure(name, turns, runs, True)
        if isinstance(r, str):
            out[key] = None
            out[key + "_error"] = r
            continue
        out[key] = med(r["wall"]) * 1e6
        out[key + "_cpu"] = med(r["cpu"]) * 1e6
        if key == "turn_us_200":
            out["storage_200_row_bytes"] = r["storage"]["row_bytes"]
            out["storage_200_file_bytes"] = r["storage"]["file_bytes_per_run"]
            out["storage_200_steps"] = r["storage"]["steps"]
    for peer in ("langgraph", "openai_agents"):
        if out.get(f"{peer}_turn_us_20") and out.get("turn_us_20"):
            out[f"{peer}_ratio_20"] = out[f"{peer}_turn_us_20"] / out["turn_us_20"]
    for k, v in out.items():
        print(f"  {k:<32} {round(v, 2) if isinstance(v, float) else v}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
