"""OpenTelemetry tracing: real gRPC calls against a server tracing into an in-memory exporter."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_proto.v1 import feedback_service_pb2_grpc
from feedback_service.config import ConfigError, Settings
from feedback_service.logging_setup import configure_logging
from feedback_service.observability.tracing import build_tracing
from feedback_service.server import FeedbackServer
from tests.helpers import thumbs_up
from tests.support.auth import ADMIN_KEY, authorized_channel

if TYPE_CHECKING:  # the async stub class exists only in the .pyi stubs
    from feedback_proto.v1.feedback_service_pb2_grpc import FeedbackServiceAsyncStub

SERVICE = "feedback.v1.FeedbackService"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
async def traced_server(engine_dir: Path, exporter: InMemorySpanExporter) -> AsyncIterator[FeedbackServer]:
    configure_logging(log_format="json", level="warning")  # as the session's server does
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings(
        listen="127.0.0.1:0",
        http_listen=None,
        data_dir=engine_dir,
        clickhouse_database="tracing_tests",
        admin_key=ADMIN_KEY,
    )
    server = FeedbackServer(settings, tracer_provider=provider)  # settings.tracing is "off": the provider wins
    await server.start()
    yield server
    await server.stop(grace_s=1)
    provider.shutdown()


@pytest.fixture
async def stub(
    traced_server: FeedbackServer, exporter: InMemorySpanExporter
) -> AsyncIterator[FeedbackServiceAsyncStub]:
    async with authorized_channel(f"127.0.0.1:{traced_server.port}", ADMIN_KEY) as channel:
        exporter.clear()
        yield feedback_service_pb2_grpc.FeedbackServiceStub(channel)  # type: ignore[misc]


async def _rpc_span(exporter: InMemorySpanExporter, method: str) -> ReadableSpan:
    """The one finished span of ``method`` (the server ends it as the call returns: wait briefly)."""
    deadline = time.monotonic() + 5
    while True:
        found = [span for span in exporter.get_finished_spans() if span.name == f"{SERVICE}/{method}"]
        if found or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)
    assert len(found) == 1, [span.name for span in exporter.get_finished_spans()]
    return found[0]


def _children(exporter: InMemorySpanExporter, parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [
        span
        for span in exporter.get_finished_spans()
        if span.parent is not None and span.parent.span_id == parent.context.span_id
    ]


async def test_an_rpc_gets_a_server_span_with_a_database_span_as_its_child(
    stub: FeedbackServiceAsyncStub, exporter: InMemorySpanExporter
) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project, feedback_id="f1")))
    await stub.GetFeedback(pb.GetFeedbackRequest(project=project, feedback_id="f1"))

    get = await _rpc_span(exporter, "GetFeedback")
    assert get.kind == SpanKind.SERVER
    assert get.parent is None  # no traceparent sent: a trace of its own
    assert dict(get.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.service": SERVICE,
        "rpc.method": "GetFeedback",
        "rpc.grpc.status_code": 0,
        "feedback.project": project,
    }
    (query,) = _children(exporter, get)
    assert query.name == "clickhouse query"
    assert query.kind == SpanKind.CLIENT
    assert query.context is not None
    assert get.context is not None
    assert query.context.trace_id == get.context.trace_id
    assert dict(query.attributes or {}) == {
        "db.system": "clickhouse",
        "db.namespace": "tracing_tests",
        "db.operation.name": "query",
    }
    # The create's write went through the micro-batcher; its insert belongs to the create's trace.
    create = await _rpc_span(exporter, "CreateFeedback")
    inserts = [span for span in _children(exporter, create) if span.name == "clickhouse insert"]
    assert len(inserts) == 1
    assert (inserts[0].attributes or {})["db.operation.batch.size"] == 1


async def test_concurrent_creates_share_one_insert_span_that_links_the_other_callers(
    stub: FeedbackServiceAsyncStub, exporter: InMemorySpanExporter
) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    await asyncio.gather(
        *(stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project))) for _ in range(20))
    )
    creates = [span for span in exporter.get_finished_spans() if span.name == f"{SERVICE}/CreateFeedback"]
    assert len(creates) == 20
    inserts = [span for span in exporter.get_finished_spans() if span.name == "clickhouse insert"]
    assert sum((span.attributes or {})["db.operation.batch.size"] for span in inserts) == 20  # type: ignore[misc]
    assert len(inserts) < 20, "the batcher coalesced nothing"
    # Each create's trace reaches its insert: as the insert's parent or through one of its links.
    reached = set()
    for insert in inserts:
        assert insert.parent is not None
        reached.add(insert.parent.span_id)
        reached.update(link.context.span_id for link in insert.links)
    assert reached == {span.context.span_id for span in creates if span.context is not None}


async def test_the_callers_traceparent_becomes_the_parent_of_the_rpc_span(
    stub: FeedbackServiceAsyncStub, exporter: InMemorySpanExporter
) -> None:
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetFeedback(
            pb.GetFeedbackRequest(project="nowhere", feedback_id="nothing"),
            metadata=(("traceparent", f"00-{trace_id}-{span_id}-01"),),
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    get = await _rpc_span(exporter, "GetFeedback")
    assert get.context is not None
    assert get.parent is not None
    assert get.context.trace_id == int(trace_id, 16)
    assert get.parent.span_id == int(span_id, 16)
    assert get.parent.is_remote
    assert (get.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert get.status.status_code == StatusCode.UNSET  # NOT_FOUND is the caller's error, not the server's


class _Records(logging.Handler):
    """The structlog event dicts of the records that reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, dict):
            self.events.append(record.msg)


@pytest.fixture
def rpc_log() -> Iterator[_Records]:
    """The RPC log lines, at info level (the test session logs warnings only)."""
    logger = logging.getLogger("feedback_service.rpc")
    records, level = _Records(), logger.level
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    yield records
    logger.setLevel(level)
    logger.removeHandler(records)


async def test_the_rpc_log_line_carries_the_trace_and_span_ids(
    stub: FeedbackServiceAsyncStub, exporter: InMemorySpanExporter, rpc_log: _Records
) -> None:
    trace_id = uuid.uuid4().hex
    await stub.ListFeedback(
        pb.ListFeedbackRequest(project=f"p{uuid.uuid4().hex[:8]}"),
        metadata=(("traceparent", f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"),),
    )
    span = await _rpc_span(exporter, "ListFeedback")
    (line,) = [event for event in rpc_log.events if event.get("method") == f"/{SERVICE}/ListFeedback"]
    assert span.context is not None
    assert line["trace_id"] == trace_id == format(span.context.trace_id, "032x")
    assert line["span_id"] == format(span.context.span_id, "016x")


def test_with_tracing_off_the_server_runs_without_opentelemetry(tmp_path: Path) -> None:
    # None in sys.modules makes every `import opentelemetry...` fail, as if it were not installed.
    # (The client SDK, which the service imports for token parsing, uses the OpenTelemetry API when present.)
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None\n"
        "import asyncio\n"
        "from pathlib import Path\n"
        "from feedback_service.config import Settings\n"
        "from feedback_service.logging_setup import configure_logging\n"
        "from feedback_service.server import FeedbackServer\n"
        "configure_logging(log_format='json', level='warning')\n"
        "async def main():\n"
        "    server = FeedbackServer(Settings(listen='127.0.0.1:0', http_listen=None, "
        f"data_dir=Path({str(tmp_path)!r}), insecure_no_auth=True))\n"
        "    assert server.tracing is None\n"
        "    await server.start()\n"
        "    await server.stop(grace_s=0)\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


def test_otlp_without_its_exporter_package_fails_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None)
    with pytest.raises(ConfigError, match=r"opentelemetry-exporter-otlp-proto-grpc.*feedback-service\[tracing\]"):
        build_tracing("otlp")


def test_console_tracing_prints_spans_under_otel_service_name(tmp_path: Path) -> None:
    # A process of its own: the console exporter writes to the sys.stdout it found at import.
    code = (
        "import asyncio, grpc\n"
        "from pathlib import Path\n"
        "from feedback_proto.v1 import feedback_service_pb2 as pb, feedback_service_pb2_grpc\n"
        "from feedback_service.config import Settings\n"
        "from feedback_service.logging_setup import configure_logging\n"
        "from feedback_service.server import FeedbackServer\n"
        "configure_logging(log_format='json', level='warning')\n"
        "async def main():\n"
        "    settings = Settings(listen='127.0.0.1:0', http_listen=None, "
        f"data_dir=Path({str(tmp_path)!r}), insecure_no_auth=True, tracing='console')\n"
        "    server = FeedbackServer(settings)\n"
        "    await server.start()\n"
        "    async with grpc.aio.insecure_channel(f'127.0.0.1:{server.port}') as channel:\n"
        "        stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)\n"
        "        await stub.ListFeedback(pb.ListFeedbackRequest(project='console'))\n"
        "    await server.stop(grace_s=0)\n"
        "asyncio.run(main())\n"
    )
    environment = {**os.environ, "OTEL_SERVICE_NAME": "feedback-under-test"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False, env=environment
    )
    assert result.returncode == 0, result.stderr
    assert f'"name": "{SERVICE}/ListFeedback"' in result.stdout
    assert '"name": "clickhouse query"' in result.stdout
    assert '"service.name": "feedback-under-test"' in result.stdout
