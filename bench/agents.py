"""Agent framework overhead per turn, side by side: wippy vs OpenAI Agents SDK vs LangGraph.

Run from the repo root: .venv/bin/python bench/agents.py [--quick]
Needs (bench only): pip install openai-agents langgraph langgraph-checkpoint-sqlite

A "turn" is one model call that asks for one tool call, plus that tool call;
the model and the tool are instant (a scripted/fake model, a no-op Python
tool), so what is measured is the framework: context building, token counting,
tool dispatch, argument validation and (when persisted) the durable record.
Each run is N-1 tool-calling turns and a final answer; the figure is wall time
(start -> result) / N, the median of several runs, for N = 20 and N = 200.

* wippy: an ``agent`` task on ``app.tasks`` (a process on the node; every model
  reply and tool result a journal step), store ``sqlite`` (file, WAL) = persisted,
  ``sqlite:///:memory:`` = not persisted (same code path, in-memory journal).
* OpenAI Agents SDK: ``Runner.run`` with ``agents.testing.ScriptedModel``,
  without a session and with ``SQLiteSession`` (file).
* LangGraph: the prebuilt ReAct agent (``create_react_agent``) with a fake chat
  model, without a checkpointer and with ``SqliteSaver`` (file).

Each framework runs in its own subprocess (no shared globals or threads).
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


def wippy(turns: int, runs: int, persisted: bool) -> list[float]:
    import asyncio

    sys.path.insert(0, str(ROOT))
    from wippy_agents.agents import python_tool
    from wippy_agents.app import App
    from wippy_agents.testing import ScriptedModel

    @python_tool("bench.tools:noop", description="does nothing", idempotent=True,
                 input_schema={"type": "object", "properties": {"i": {"type": "integer"}}, "required": ["i"]})
    async def noop(args, ctx):
        return "ok"

    usage = {"input_tokens": 10, "output_tokens": 5}  # the model's own counting is not framework work
    script = [{"tool_calls": [{"name": "noop", "arguments": {"i": i}}], "usage": usage} for i in range(turns - 1)]
    script.append({"text": "done", "usage": usage})

    async def main() -> list[float]:
        out = []
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "app.yaml"
            path.write_text(APP, encoding="utf-8")
            for r in range(runs + 1):  # the first run warms up imports and caches
                store = f"sqlite:///{tmp}/state{r}.db" if persisted else "sqlite:///:memory:"
                async with await App.open(path, store=store) as app:
                    service = app.extensions["agents"]
                    model = ScriptedModel(script)
                    service.use_provider("bench.models:m", model)
                    t0 = time.perf_counter()
                    result = await service.run("bench.agents:a", PROMPT, task_id=f"run{r}")
                    elapsed = time.perf_counter() - t0
                    assert result.stop_reason == "final" and result.turns == turns, result
                    if r:
                        out.append(elapsed / turns)
        return out

    return asyncio.run(main())


# -- OpenAI Agents SDK --------------------------------------------------------------
def openai_agents(turns: int, runs: int, persisted: bool) -> list[float]:
    import asyncio

    from agents import Agent, Runner, SQLiteSession, function_tool, set_tracing_disabled
    from agents.testing import ScriptedModel, assistant_message, function_call

    set_tracing_disabled(True)

    @function_tool
    def noop(i: int) -> str:
        """does nothing"""
        return "ok"

    async def main() -> list[float]:
        out = []
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(runs + 1):
                steps = [[function_call("noop", {"i": i}, call_id=f"c{i}")] for i in range(turns - 1)]
                steps.append([assistant_message("done")])
                agent = Agent(name="bench", instructions="You are a benchmark agent. Call tools.", tools=[noop],
                              model=ScriptedModel(steps))
                session = SQLiteSession(f"run{r}", f"{tmp}/s{r}.db") if persisted else None
                t0 = time.perf_counter()
                result = await Runner.run(agent, PROMPT, session=session, max_turns=turns + 1)
                elapsed = time.perf_counter() - t0
                assert result.final_output == "done"
                if session is not None:
                    session.close()
                if r:
                    out.append(elapsed / turns)
        return out

    return asyncio.run(main())


# -- LangGraph ---------------------------------------------------------------------
def langgraph(turns: int, runs: int, persisted: bool) -> list[float]:
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

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(runs + 1):
            replies = [AIMessage(content="", tool_calls=[{"name": "noop", "args": {"i": i}, "id": f"c{i}"}])
                       for i in range(turns - 1)] + [AIMessage(content="done")]
            conn = sqlite3.connect(f"{tmp}/g{r}.db", check_same_thread=False) if persisted else None
            saver = SqliteSaver(conn) if conn is not None else None
            graph = create_react_agent(FakeToolModel(messages=iter(replies)), [noop], checkpointer=saver,
                                       prompt="You are a benchmark agent. Call tools.")
            config = {"recursion_limit": 2 * turns + 5, "configurable": {"thread_id": f"run{r}"}}
            t0 = time.perf_counter()
            state = graph.invoke({"messages": [("user", PROMPT)]}, config)
            elapsed = time.perf_counter() - t0
            assert state["messages"][-1].content == "done"
            if conn is not None:
                conn.close()
            if r:
                out.append(elapsed / turns)
    return out


FRAMEWORKS = {"wippy": wippy, "openai-agents": openai_agents, "langgraph": langgraph}


def measure(name: str, turns: int, runs: int, persisted: bool) -> list[float] | str:
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
    parser.add_argument("--one", nargs=4, metavar=("NAME", "TURNS", "RUNS", "PERSISTED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        name, turns, runs, persisted = args.one
        print(json.dumps(FRAMEWORKS[name](int(turns), int(runs), persisted == "1")))
        return
    runs20, runs200 = (3, 1) if args.quick else (7, 3)
    rows = []
    for name in FRAMEWORKS:
        for persisted in (False, True):
            r20 = measure(name, 20, runs20, persisted)
            r200 = measure(name, 200, runs200, persisted)
            rows.append((name, persisted, r20, r200))
            print(f"  measured {name} persisted={persisted}", file=sys.stderr)
    print(f"\nFramework overhead per turn (scripted model, no-op tool), median of runs; "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n")
    head = f"{'framework':<16}{'persisted':<28}{'20 turns':>12}{'200 turns':>12}{'200/20':>9}"
    print(head)
    print("-" * len(head))
    store = {"wippy": ("sqlite journal (WAL)", "in-memory journal"),
             "openai-agents": ("SQLiteSession", "no session"),
             "langgraph": ("SqliteSaver", "no checkpointer")}
    base = {}
    for name, persisted, r20, r200 in rows:
        label = store[name][0 if persisted else 1]
        if isinstance(r20, str) or isinstance(r200, str):
            print(f"{name:<16}{label:<28}  {r20 if isinstance(r20, str) else r200}")
            continue
        a, b = statistics.median(r20) * 1e6, statistics.median(r200) * 1e6
        base[(name, persisted)] = (a, b)
        print(f"{name:<16}{label:<28}{a:>10.0f}us{b:>10.0f}us{b / a:>8.2f}x")
    wp = base.get(("wippy", True))
    if wp:
        print(f"\nwippy journaled turn at 20 turns: {wp[0]:.0f} us (target <= 300 us); "
              f"200/20 ratio {wp[1] / wp[0]:.2f} (target <= 1.2)")
        for peer in ("openai-agents", "langgraph"):
            if (peer, True) in base:
                p = base[(peer, True)]
                print(f"  {peer} persisted is {p[0] / wp[0]:.1f}x wippy at 20 turns, {p[1] / wp[1]:.1f}x at 200 turns")


if __name__ == "__main__":
    main()
