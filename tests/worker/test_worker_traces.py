"""A real worker sends its spans over OTLP/HTTP to the endpoint it is given."""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from orchestrator.services.orchestrations import create_orchestration
from runs.models import Run
from runs.services import lifecycle
from tests.runs.servers import local_server
from tests.worker.conftest import Worker, wait_until

pytestmark = pytest.mark.worker


class Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that keeps what it is sent: (resource attributes, span) pairs."""

    received: list = []
    paths: list = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.paths.append(self.path)
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                self.received.extend((resource, span) for span in scope_spans.spans)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def collector():
    Receiver.received, Receiver.paths = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def upstream():
    with local_server() as server:
        yield server.url


def attributes(span) -> dict:
    values = {}
    for item in span.attributes:
        value = item.value
        values[item.key] = getattr(value, value.WhichOneof("value"))
    return values


def test_a_worker_exports_the_run_tree_to_the_otlp_endpoint(org, worker_env, upstream, collector):
    worker = Worker(
        {**worker_env, "OTEL_EXPORTER_OTLP_ENDPOINT": collector, "OTEL_BSP_SCHEDULE_DELAY": "100"},
        concurrency=1,
    )
    worker.start()
    try:
        flow = create_orchestration(
            org,
            {
                "name": "Traced",
                "status": "active",
                "definition": {
                    "nodes": [
                        {"id": "prep", "type": "transform", "config": {"output": "go"}},
                        {
                            "id": "look",
                            "type": "agent",
                            "config": {
                                "agent": {"model": "builtin/script", "tools": ["http_get"]},
                                "prompt": "Look",
                                "script": [
                                    {"tool": "http_get", "args": {"url": f"{upstream}/fact/1"}},
                                    "Seen.",
                                ],
                            },
                        },
                    ],
                    "edges": [{"source": "prep", "target": "look"}],
                },
            },
        )
        run, _ = lifecycle.fire(flow, {})
        wait_until(lambda: Run.objects.get(pk=run.pk).status == "succeeded", timeout=90)
        wait_until(lambda: any(s.name == "run traced" for _, s in Receiver.received), timeout=30)
    finally:
        worker.stop()

    assert set(Receiver.paths) == {"/v1/traces"}
    spans = {span.name: span for _, span in Receiver.received}
    assert sorted(spans) == sorted(
        ["run traced", "step prep", "step look", "chat script", "execute_tool http_get"]
    )
    assert {resource["service.name"] for resource, _ in Receiver.received} == {"orchestrator"}
    assert {span.trace_id for span in spans.values()} == {run.pk.bytes}
    root = spans["run traced"]
    assert root.parent_span_id == b""
    assert attributes(root)["orchestrator.run.status"] == "succeeded"
    for name in ("step prep", "step look"):
        assert spans[name].parent_span_id == root.span_id
    for name in ("chat script", "execute_tool http_get"):
        assert spans[name].parent_span_id == spans["step look"].span_id
        assert spans["step look"].start_time_unix_nano <= spans[name].start_time_unix_nano
        assert spans[name].end_time_unix_nano <= spans["step look"].end_time_unix_nano
    assert attributes(spans["execute_tool http_get"])["gen_ai.tool.name"] == "http_get"
    assert attributes(spans["chat script"])["gen_ai.usage.input_tokens"] > 0
