"""Per-credential rate limits: a token bucket per key, RESOURCE_EXHAUSTED with RetryInfo when spent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_proto.v1 import feedback_service_pb2_grpc
from feedback_service.api.rate_limit import RateLimiter
from feedback_service.config import Settings
from feedback_service.domain.errors import RateLimitedError
from feedback_service.server import FeedbackServer
from tests.helpers import thumbs_up
from tests.support.auth import ADMIN_KEY, authorized_channel
from tests.test_auth import create_key


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=2.0, burst=4.0, clock=clock)
    for _ in range(4):
        limiter.charge("a")
    with pytest.raises(RateLimitedError) as caught:
        limiter.charge("a")
    assert caught.value.retry_after_s == pytest.approx(0.5)
    limiter.charge("b")  # another key has its own bucket
    clock.now += 0.5
    limiter.charge("a")
    with pytest.raises(RateLimitedError):
        limiter.charge("a", cost=2)
    clock.now += 10
    limiter.charge("a", cost=100)  # bigger than the burst: allowed from a full bucket
    with pytest.raises(RateLimitedError):
        limiter.charge("a")


def test_rate_zero_turns_limiting_off() -> None:
    limiter = RateLimiter(rate=0, burst=1)
    for _ in range(1000):
        limiter.charge("a")


@pytest.fixture
async def limited_server(engine_dir: Path) -> AsyncIterator[FeedbackServer]:
    settings = Settings(
        listen="127.0.0.1:0",
        http_listen=None,
        data_dir=engine_dir,
        clickhouse_database="rate_limit_tests",
        admin_key=ADMIN_KEY,
        # Slow refill, so that the test's own pace (the machine is shared) cannot refill the bucket.
        rate_limit_per_s=0.1,
        rate_limit_burst=5,
    )
    running = FeedbackServer(settings)
    await running.start()
    yield running
    await running.stop(grace_s=1)


def _retry_delay_s(error: grpc.aio.AioRpcError) -> float:
    status = status_pb2.Status()
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status.ParseFromString(value)
    for detail in status.details:
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(retry):
            return float(retry.retry_delay.ToTimedelta().total_seconds())
    raise AssertionError("no RetryInfo in the error details")


async def test_a_key_over_its_limit_gets_resource_exhausted_with_retry_info(limited_server: FeedbackServer) -> None:
    project = "limited"
    key = await create_key(limited_server, project, "ingest", "read")
    other = await create_key(limited_server, project, "read")
    async with authorized_channel(f"127.0.0.1:{limited_server.port}", key) as channel:
        stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
        for _ in range(5):
            await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project)))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project)))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "rate limit" in (caught.value.details() or "")
        delay = _retry_delay_s(caught.value)
        assert 0 < delay <= 10 + 1e-6  # one unit at 0.1/s
        async with authorized_channel(f"127.0.0.1:{limited_server.port}", other) as other_channel:
            other_stub = feedback_service_pb2_grpc.FeedbackServiceStub(other_channel)
            await other_stub.ListFeedback(pb.ListFeedbackRequest())  # another key is not limited by this one
        # (Refill over time is covered with a fake clock above.)
        with pytest.raises(grpc.aio.AioRpcError) as batch:
            await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=[thumbs_up(project)] * 3))
        assert batch.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # a batch spends one unit per item
