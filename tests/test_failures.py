"""Storage outages and a full write queue reach the caller as UNAVAILABLE and RESOURCE_EXHAUSTED."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest

from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_proto.v1 import feedback_service_pb2_grpc
from feedback_service.config import Settings
from feedback_service.server import FeedbackServer
from tests.helpers import thumbs_up
from tests.support.auth import ADMIN_KEY, authorized_channel
from tests.support.clickhouse_http import ClickHouseHttpFixture

if TYPE_CHECKING:  # the async stub class exists only in the .pyi stubs
    from feedback_proto.v1.feedback_service_pb2_grpc import FeedbackServiceAsyncStub


async def _started(settings: Settings) -> FeedbackServer:
    server = FeedbackServer(settings)
    await server.start()
    return server


async def test_a_database_outage_is_unavailable_and_recovers(engine_dir: Path) -> None:
    # Test fixture standing in for a ClickHouse server that goes away and comes back.
    endpoint = ClickHouseHttpFixture(str(engine_dir))
    endpoint.start()
    settings = Settings(
        listen="127.0.0.1:0",
        data_dir=engine_dir,
        clickhouse_url=endpoint.url,
        clickhouse_database="outage_tests",
        admin_key=ADMIN_KEY,
    )
    server = await _started(settings)
    project = f"p{uuid.uuid4().hex[:8]}"
    try:
        async with authorized_channel(f"127.0.0.1:{server.port}", ADMIN_KEY) as channel:
            stub: FeedbackServiceAsyncStub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)  # type: ignore[assignment]
            await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project, feedback_id="before")))
            port = endpoint.port
            endpoint.stop()
            for call in (
                stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project, feedback_id="during"))),
                stub.GetFeedback(pb.GetFeedbackRequest(project=project, feedback_id="before")),
                stub.ListFeedback(pb.ListFeedbackRequest(project=project)),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "unavailable" in (caught.value.details() or "").lower()
            # The same port again: the service recovers without a restart, and the retry lands once.
            endpoint = ClickHouseHttpFixture(str(engine_dir), port=port)
            endpoint.start()
            retried = thumbs_up(project, feedback_id="during")
            await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=retried))
            listed = await stub.ListFeedback(pb.ListFeedbackRequest(project=project))
            assert sorted(f.feedback_id for f in listed.feedback) == ["before", "during"]
    finally:
        await server.stop(grace_s=1)
        endpoint.stop()


@pytest.fixture
async def small_queue_server(engine_dir: Path) -> AsyncIterator[FeedbackServer]:
    # The worker lingers up to 300 ms for a batch of 2,000 rows, while the queue holds 1,000:
    # a second 1,000-item batch arriving in that window finds the queue full.
    settings = Settings(
        listen="127.0.0.1:0",
        data_dir=engine_dir,
        clickhouse_database="queue_tests",
        write_queue_rows=1000,
        batch_max_rows=2000,
        batch_max_delay_ms=300,
        admin_key=ADMIN_KEY,
    )
    server = await _started(settings)
    yield server
    await server.stop(grace_s=1)


async def test_a_full_write_queue_is_resource_exhausted_and_writes_nothing(
    small_queue_server: FeedbackServer,
) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    async with authorized_channel(f"127.0.0.1:{small_queue_server.port}", ADMIN_KEY) as channel:
        stub: FeedbackServiceAsyncStub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)  # type: ignore[assignment]
        batches = [[thumbs_up(project, feedback_id=f"b{b}-{i}") for i in range(1000)] for b in range(3)]
        outcomes = await asyncio.gather(
            *(stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=items)) for items in batches),
            return_exceptions=True,
        )
        refused = [i for i, o in enumerate(outcomes) if isinstance(o, grpc.aio.AioRpcError)]
        assert refused, "no batch found the queue full"
        for index in refused:
            error = outcomes[index]
            assert isinstance(error, grpc.aio.AioRpcError)
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "queue is full" in (error.details() or "")
        stored: set[str] = set()
        token = ""
        while True:
            page = await stub.ListFeedback(pb.ListFeedbackRequest(project=project, page_size=1000, page_token=token))
            stored |= {f.feedback_id for f in page.feedback}
            token = page.next_page_token
            if not token:
                break
        accepted = {f.feedback_id for i, items in enumerate(batches) if i not in refused for f in items}
        assert stored == accepted
