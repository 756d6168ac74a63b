"""The whole path: OTEL_* variables -> OTLP/HTTP protobuf to a local receiver -> the span tree of one agent task."""

from __future__ import annotations

import http.server
import threading

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from wippy_agents.app import App

from .apps import traced_app


class _Receiver(http.server.BaseHTTPRequestHandler):
    requests: list[bytes] = []

    def do_POST(self):  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).requests.append((self.path, self.headers.get("Content-Type"), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Receiver.requests
    server.shutdown()
    server.server_close()
    thread.join(5)


def decode(requests) -> list:
    spans = []
    for path, content_type, body in requests:
        assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
        msg = ExportTraceServiceRequest()
        msg.ParseFromString(body)
        for rs in msg.resource_spans:
            service = {a.key: a.value.string_value for a in rs.resource.attributes}.get("service.name")
            for ss in rs.scope_spans:
                spans.extend((service, s) for s in ss.spans)
    return spans


def attrs(span) -> dict:
    out = {}
    for a in span.attributes:
        v = a.value
        out[a.key] = (v.string_value if v.HasField("string_value") else v.int_value if v.HasField("int_value")
                      else v.bool_value if v.HasField("bool_value") else [x.string_value for x in v.array_value.values])
    return out


def render(spans) -> list[str]:
    ids = {s.span_id for s in spans}
    kids: dict = {}
    for s in spans:
        kids.setdefault(s.parent_span_id if s.parent_span_id in ids else b"", []).append(s)
    lines: list[str] = []

    def walk(parent, prefix):
        children = sorted(kids.get(parent, []), key=lambda s: s.start_time_unix_nano)
        for i, s in enumerate(children):
            last = i == len(children) - 1
            a = attrs(s)
            ms = (s.end_time_unix_nano - s.start_time_unix_nano) / 1e6
            note = ", ".join(f"{k.split('.')[-1]}={a[k]}" for k in (
                "gen_ai.request.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
                "gen_ai.tool.name", "wippy.step.seq") if k in a)
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{s.name}  [{ms:.1f} ms{'; ' + note if note else ''}]")
            walk(s.span_id, prefix + ("   " if last else "│  "))

    walk(b"", "")
    return lines


async def test_an_agent_task_exports_its_span_tree_over_otlp_http(tmp_path, receiver, monkeypatch):
    url, requests = receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "wippy-test")
    path = tmp_path / "app.yaml"
    path.write_text(traced_app(), encoding="utf-8")
    app = await App.open(path, store=f"sqlite:///{tmp_path / 's.db'}")
    try:
        assert app.tracing.enabled
        result = await app.agents.run("app.agents:a", "go", task_id="otlp-1", timeout=30)
    finally:
        await app.close()  # flushes the batch processor
    assert result.ok
    got = decode(requests)
    assert got and {service for service, _ in got} == {"wippy-test"}
    spans = [s for _, s in got if s.name != "registry.change"]
    assert len({s.trace_id for s in spans}) == 1
    lines = render(spans)
    print("\n".join(lines))
    names = [line.split("  [")[0] for line in lines]
    assert names[0] == "└─ invoke_agent app.agents:a"
    assert any(n.endswith("└─ invoke_agent app.agents:b") and n.startswith("   │  ") for n in names)
    chats = [attrs(s) for s in spans if s.name.startswith("chat ")]
    assert len(chats) == 4 and all(c["gen_ai.operation.name"] == "chat" and c["gen_ai.provider.name"] == "scripted"
                                   for c in chats)
    assert {c["gen_ai.request.model"] for c in chats} == {"scripted-a", "scripted-b"}
    tools = [attrs(s) for s in spans if s.name.startswith("execute_tool ")]
    assert sorted(t["gen_ai.tool.name"] for t in tools) == ["ask_b", "double"]
    assert all(t["gen_ai.tool.call.id"] for t in tools)
    steps = [attrs(s) for s in spans if s.name.startswith("step ")]
    assert steps and all(s["wippy.step.replayed"] is False for s in steps)
