"""Prometheus metrics: a server on the real engine serves real gRPC calls; /metrics is scraped over HTTP."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from feedback_proto.v1 import aggregates_pb2 as agg
from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_proto.v1 import feedback_service_pb2_grpc
from feedback_service.config import Settings
from feedback_service.domain.errors import DeadlineExceededError, StoreUnavailableError
from feedback_service.observability.metrics import ServerMetrics
from feedback_service.server import FeedbackServer
from feedback_service.store.deadline import call_deadline
from feedback_service.store.engine import ClickHouseEngine, EngineConfig
from tests.helpers import thumbs_up
from tests.support.auth import ADMIN_KEY, authorized_channel

if TYPE_CHECKING:  # the async stub class exists only in the .pyi stubs
    from feedback_proto.v1.feedback_service_pb2_grpc import FeedbackServiceAsyncStub

SERVICE = "feedback.v1.FeedbackService"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return str(response.read().decode())


async def _scrape(port: int) -> Samples:
    return _parse(await asyncio.to_thread(_get, port))


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _rpcs(samples: Samples, method: str, code: str) -> float | None:
    return _value(samples, "feedback_rpcs_total", service=SERVICE, method=method, code=code)


@pytest.fixture
async def metrics_server(engine_dir: Path) -> AsyncIterator[FeedbackServer]:
    settings = Settings(
        listen="127.0.0.1:0",
        http_listen=None,
        data_dir=engine_dir,
        clickhouse_database="metrics_tests",
        admin_key=ADMIN_KEY,
        metrics_listen="127.0.0.1:0",  # the endpoint picks a free port and reports it
        # 100 units, refilled so slowly that the test's own pace cannot matter: a 100-item batch after
        # a few calls is refused.
        rate_limit_per_s=0.001,
        rate_limit_burst=100,
    )
    server = FeedbackServer(settings)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace_s=1)


async def test_rpcs_writes_streams_and_rate_limits_show_in_the_scraped_metrics(
    metrics_server: FeedbackServer,
) -> None:
    port = metrics_server.metrics_port
    assert port is not None
    assert port != 0
    project = f"p{uuid.uuid4().hex[:8]}"
    async with authorized_channel(f"127.0.0.1:{metrics_server.port}", ADMIN_KEY) as channel:
        stub: FeedbackServiceAsyncStub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)  # type: ignore[assignment]
        await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project)))
        await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=[thumbs_up(project) for _ in range(10)]))
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project, key="")))
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        aggregates = pb.StreamAggregatesRequest(filter=agg.AggregateFilter(project=project))
        assert [message async for message in stub.StreamAggregates(aggregates)]  # a snapshot, then done

        following = stub.StreamAggregates(pb.StreamAggregatesRequest(filter=aggregates.filter, follow=True))
        await following.read()  # the stream is open on the server now
        during = await _scrape(port)
        following.cancel()

        with pytest.raises(grpc.aio.AioRpcError) as limited:  # 14 units spent: 100 more do not fit
            await stub.BatchCreateFeedback(
                pb.BatchCreateFeedbackRequest(feedback=[thumbs_up(project) for _ in range(100)])
            )
        assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    assert _value(during, "feedback_open_streams", service=SERVICE, method="StreamAggregates") == 1
    after = await _scrape(port)
    deadline = time.monotonic() + 10
    while _rpcs(after, "StreamAggregates", "CANCELLED") is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # the server notices the cancelled stream on its own time
        after = await _scrape(port)

    # One counter per method and status code, labelled with the service.
    assert _rpcs(after, "CreateFeedback", "OK") == 1
    assert _rpcs(after, "CreateFeedback", "INVALID_ARGUMENT") == 1
    assert _rpcs(after, "BatchCreateFeedback", "OK") == 1
    assert _rpcs(after, "BatchCreateFeedback", "RESOURCE_EXHAUSTED") == 1
    assert _rpcs(after, "StreamAggregates", "OK") == 1
    assert _rpcs(after, "StreamAggregates", "CANCELLED") == 1
    # Latency: every finished call observed once, in a bucket.
    create = {"service": SERVICE, "method": "CreateFeedback"}
    assert _value(after, "feedback_rpc_duration_seconds_count", **create) == 2
    assert _value(after, "feedback_rpc_duration_seconds_bucket", **create, le="+Inf") == 2
    assert (_value(after, "feedback_rpc_duration_seconds_sum", **create) or 0) > 0
    assert _value(after, "feedback_open_streams", service=SERVICE, method="StreamAggregates") == 0
    assert _value(after, "feedback_rate_limited_total", service=SERVICE, method="BatchCreateFeedback") == 1
    assert _value(after, "feedback_rate_limited_total", **create) == 0
    # Writes: the create and the 10-item batch reached the batcher; the refused calls did not.
    assert _value(after, "feedback_insert_batch_rows_sum") == 11
    inserts = _value(after, "feedback_insert_batch_rows_count")
    assert inserts is not None
    assert 1 <= inserts <= 2
    assert _value(after, "feedback_insert_duration_seconds_count") == inserts
    assert _value(after, "feedback_write_queue_rows") == 0
    for kind in ("unavailable", "timeout", "other"):
        assert _value(after, "feedback_db_errors_total", kind=kind) == 0
    # The registry of this server also has the process metrics the default registry would.
    assert (_value(after, "process_resident_memory_bytes") or 0) > 0


async def test_the_metrics_endpoint_stops_with_the_server(engine_dir: Path) -> None:
    settings = Settings(
        listen="127.0.0.1:0",
        http_listen=None,
        data_dir=engine_dir,
        clickhouse_database="metrics_tests",
        admin_key=ADMIN_KEY,
        metrics_listen="127.0.0.1:0",
    )
    server = FeedbackServer(settings)
    await server.start()
    port = server.metrics_port
    assert port is not None
    await asyncio.to_thread(_get, port)
    await server.stop(grace_s=1)
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(_get, port)


def test_without_metrics_listen_there_is_no_endpoint_and_nothing_is_counted(engine_dir: Path) -> None:
    server = FeedbackServer(Settings(data_dir=engine_dir, clickhouse_database="metrics_tests", admin_key=ADMIN_KEY))
    try:
        assert server.metrics is None
        assert server.metrics_port is None
    finally:
        server.engine.close()


def test_servers_in_one_process_have_registries_of_their_own() -> None:
    first, second = ServerMetrics(), ServerMetrics()  # the same metric names: no "Duplicated timeseries"
    first.rpc("/feedback.v1.FeedbackService/GetFeedback").rate_limited()
    labels = {"service": SERVICE, "method": "GetFeedback"}
    assert first.registry.get_sample_value("feedback_rate_limited_total", labels) == 1
    assert second.registry.get_sample_value("feedback_rate_limited_total", labels) is None


async def test_failed_database_calls_are_counted_by_kind(engine_dir: Path) -> None:
    metrics = ServerMetrics()
    embedded = ClickHouseEngine(EngineConfig(data_dir=engine_dir, database="default"), metrics=metrics)
    unreachable = ClickHouseEngine(
        EngineConfig(data_dir=engine_dir, url="http://127.0.0.1:9", connect_timeout_s=1), metrics=metrics
    )
    slow = "SELECT sleepEachRow(0.2) FROM numbers(25) SETTINGS max_block_size = 1"  # 5 s
    try:
        with pytest.raises(StoreUnavailableError):
            await unreachable.run(lambda client: client.query("SELECT 1"))
        with pytest.raises(Exception, match="no_such_column"):
            await embedded.run(lambda client: client.query("SELECT no_such_column"))
        token = call_deadline.set(time.monotonic() + 1.0)
        try:
            with pytest.raises(DeadlineExceededError):
                await embedded.run(lambda client: client.query(slow).result_rows)
        finally:
            call_deadline.reset(token)
    finally:
        await asyncio.to_thread(unreachable.close)
        await asyncio.to_thread(embedded.close)
    counts = {
        kind: metrics.registry.get_sample_value("feedback_db_errors_total", {"kind": kind})
        for kind in ("unavailable", "timeout", "other")
    }
    assert counts == {"unavailable": 1, "timeout": 1, "other": 1}
