"""Spans of an agent task with the SDK's InMemorySpanExporter: the tree, the GenAI attributes, replay marks."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from wippy_agents.agents import python_tool
from wippy_agents.app import App
from wippy_agents.observability import tracing_enabled
from wippy_agents.observability.tracing import Tracing

from .apps import traced_app, tree


@pytest.fixture
def exporter():
    exp = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exp))
    yield exp, provider
    provider.shutdown()


async def open_traced(tmp_path, provider, db="s.db"):
    path = tmp_path / "app.yaml"
    path.write_text(traced_app(), encoding="utf-8")
    app = await App.open(path, store=f"sqlite:///{tmp_path / db}")
    Tracing.install(app, tracer_provider=provider)
    return app


async def test_an_agent_task_is_a_tree_of_turns_steps_model_and_tool_calls_with_the_delegate_inside(tmp_path, exporter):
    exp, provider = exporter
    app = await open_traced(tmp_path, provider)
    try:
        result = await app.agents.run("app.agents:a", "go", task_id="t1", timeout=30)
    finally:
        await app.close()
    assert result.answer == "42, and b says hi"
    spans = [s for s in exp.get_finished_spans() if s.name != "registry.change"]
    assert tree(spans) == [
        "invoke_agent app.agents:a",
        "  turn 1",
        "    step model",
        "      chat scripted-a",
        "    step tool:double",
        "      execute_tool double",
        "        funcs.call app.tools:add",
        "  turn 2",
        "    step model",
        "      chat scripted-a",
        "    step delegate:ask_b",
        "      execute_tool ask_b",
        "        invoke_agent app.agents:b",
        "          turn 1",
        "            step model",
        "              chat scripted-b",
        "  turn 3",
        "    step model",
        "      chat scripted-a",
    ]
    chat = next(s for s in spans if s.name == "chat scripted-a")
    assert {k: chat.attributes[k] for k in ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model")} \
        == {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "scripted", "gen_ai.request.model": "scripted-a"}
    assert chat.attributes["gen_ai.usage.input_tokens"] > 0 and "gen_ai.usage.output_tokens" in chat.attributes
    assert tuple(chat.attributes["gen_ai.response.finish_reasons"]) == ("tool_calls",)
    tool = next(s for s in spans if s.name == "execute_tool double")
    assert tool.attributes["gen_ai.tool.name"] == "double" and tool.attributes["gen_ai.tool.call.id"]
    step = next(s for s in spans if s.name == "step tool:double")
    assert (step.attributes["wippy.step.seq"], step.attributes["wippy.step.replayed"]) == (2, False)
    assert len({s.context.trace_id for s in spans}) == 1  # the delegate's spans are in its parent's trace


GATE: dict = {"entered": None}


@python_tool("test.trace:gate", description="waits until the test kills the run", input_schema={"type": "object"},
             idempotent=True)
async def gate(args, ctx):
    if GATE["entered"] is not None:
        GATE["entered"].set()
        await asyncio.sleep(30)
    return "passed"


async def test_a_resumed_task_marks_replayed_steps_and_keeps_their_journaled_times(tmp_path, exporter):
    exp, provider = exporter
    script = [{"tool_calls": [{"name": "double", "arguments": {"x": 1}}]}, {"tool_calls": [{"name": "gate"}]},
              {"text": "done"}]
    path = tmp_path / "app.yaml"
    path.write_text(traced_app(script, ["test.trace:gate"]), encoding="utf-8")
    store = f"sqlite:///{tmp_path / 'r.db'}"
    GATE["entered"] = asyncio.Event()
    first = await App.open(path, store=store)
    try:
        await first.agents.start("app.agents:a", "go", task_id="r1")
        await asyncio.wait_for(GATE["entered"].wait(), 10)
        while len([s for s in await first.store.journal_load("r1") if s.status == "ok"]) < 3:
            await asyncio.sleep(0.01)
        first.node.exit(first.node.whereis("task:r1"), "kill")  # the run dies inside the gate
    finally:
        GATE["entered"] = None
        await first.close()
    journal = {s.seq: s for s in await _journal(store, "r1")}
    second = await App.open(path, store=store, recover=False)
    Tracing.install(second, tracer_provider=provider)
    try:
        await second.tasks.recover()
        assert (await second.agents.result("r1", timeout=30)).answer == "done"
    finally:
        await second.close()
    steps = {s.attributes["wippy.step.seq"]: s for s in exp.get_finished_spans() if s.name.startswith("step ")}
    assert [(seq, steps[seq].name, steps[seq].attributes["wippy.step.replayed"]) for seq in sorted(steps)] == [
        (1, "step model", True), (2, "step tool:double", True), (3, "step model", True),
        (4, "step tool:gate", False), (5, "step model", False)]
    for seq in (1, 2, 3):  # not re-timed: the span shows when the step really ran
        assert steps[seq].start_time == int(journal[seq].started_at * 1e9)
        assert steps[seq].end_time == int(journal[seq].finished_at * 1e9)
    names = [s.name for s in exp.get_finished_spans()]
    assert names.count("execute_tool double") == 0 and names.count("execute_tool gate") == 1
    assert names.count("chat scripted-a") == 1  # only the model call that really ran


async def _journal(store_url: str, task_id: str):
    from wippy_agents.store import open_store

    store = await open_store(store_url)
    try:
        return await store.journal_load(task_id)
    finally:
        await store.close()


async def test_registry_changes_are_spans(tmp_path, exporter):
    exp, provider = exporter
    app = await open_traced(tmp_path, provider)
    try:
        cs = app.registry.changeset(author="test")
        cs.create({"id": "app.cfg:x", "kind": "registry.entry", "host": "db"})
        version = await app.registry.apply(cs)
    finally:
        await app.close()
    change = [s for s in exp.get_finished_spans() if s.name == "registry.change"]
    assert [s.attributes["wippy.registry.version"] for s in change] == [version]
    assert change[0].attributes["wippy.registry.changed"] == '["app.cfg:x"]'


def test_tracing_is_off_unless_the_standard_variables_turn_it_on(monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED",
                 "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    assert not tracing_enabled()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces")
    assert tracing_enabled()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not tracing_enabled()


def test_with_tracing_off_opening_an_app_imports_nothing_of_opentelemetry(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "app.yaml"
    path.write_text(traced_app(), encoding="utf-8")
    code = ("import asyncio, sys\n"
            "from wippy_agents.app import App\n"
            "async def main():\n"
            f"    async with await App.open({str(path)!r}, store='sqlite:///:memory:') as app:\n"
            "        await app.agents.run('app.agents:a', 'go', timeout=30)\n"
            "asyncio.run(main())\n"
            "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'mcp'))))\n")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
