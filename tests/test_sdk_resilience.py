"""The SDK through failures: refusals, outages, rate limits and restarts never lose or duplicate feedback."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from feedback_client import BatchingOptions, FeedbackClient, FeedbackError, RetryPolicy, thumbs_up
from feedback_client.retry import IDEMPOTENT_RETRY_CODES, NON_IDEMPOTENT_RETRY_CODES, call_with_retry
from feedback_proto.v1 import aggregates_pb2
from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_service.config import Settings
from feedback_service.server import FeedbackServer
from tests.support.auth import ADMIN_KEY
from tests.support.clickhouse_http import ClickHouseHttpFixture
from tests.support.ports import free_port
from tests.support.server_process import ServerProcess

FAST_RETRY = RetryPolicy(max_attempts=None, initial_backoff_s=0.05, max_backoff_s=0.5, max_elapsed_s=60)


async def raw_row_counts(server: FeedbackServer, project: str) -> tuple[int, int]:
    """(rows, distinct ids) below the API: ListFeedback reads with FINAL, which would hide a duplicate."""
    ((rows, distinct),) = await server.engine.run(
        lambda client: (
            client.query(
                "SELECT count(), uniqExact(feedback_id) FROM feedback WHERE project = {project:String}",
                parameters={"project": project},
            ).result_rows
        )
    )
    return int(rows), int(distinct)


async def all_ids(client: FeedbackClient, project: str) -> list[str]:
    request = pb.ListFeedbackRequest(project=project, page_size=1000)
    return [f.feedback_id async for f in client.iter_feedback(request)]


# ---- the retry rules themselves -------------------------------------------------------------------


def counting_attempt(errors: list[FeedbackError]) -> tuple[Callable[[], Awaitable[str]], list[float]]:
    """An attempt that raises the given errors in turn, then succeeds; records when it was called."""
    calls: list[float] = []

    async def attempt() -> str:
        calls.append(time.monotonic())
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "done"

    return attempt, calls


async def test_invalid_argument_is_never_retried() -> None:
    attempt, calls = counting_attempt([FeedbackError(grpc.StatusCode.INVALID_ARGUMENT, "bad")] * 3)
    with pytest.raises(FeedbackError):
        await call_with_retry(attempt, FAST_RETRY, IDEMPOTENT_RETRY_CODES)
    assert len(calls) == 1


async def test_unavailable_is_retried_until_it_succeeds() -> None:
    attempt, calls = counting_attempt([FeedbackError(grpc.StatusCode.UNAVAILABLE, "down")] * 3)
    assert await call_with_retry(attempt, FAST_RETRY, IDEMPOTENT_RETRY_CODES) == "done"
    assert len(calls) == 4


async def test_non_idempotent_calls_are_not_retried_on_unavailable() -> None:
    attempt, calls = counting_attempt([FeedbackError(grpc.StatusCode.UNAVAILABLE, "down")])
    with pytest.raises(FeedbackError):
        await call_with_retry(attempt, FAST_RETRY, NON_IDEMPOTENT_RETRY_CODES)
    assert len(calls) == 1


async def test_retry_waits_at_least_the_servers_retry_delay() -> None:
    attempt, calls = counting_attempt(
        [FeedbackError(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", retry_delay_s=0.3)]
    )
    assert await call_with_retry(attempt, FAST_RETRY, IDEMPOTENT_RETRY_CODES) == "done"
    assert calls[1] - calls[0] >= 0.3


async def test_retry_gives_up_after_max_attempts() -> None:
    attempt, calls = counting_attempt([FeedbackError(grpc.StatusCode.UNAVAILABLE, "down")] * 10)
    policy = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.01)
    with pytest.raises(FeedbackError):
        await call_with_retry(attempt, policy, IDEMPOTENT_RETRY_CODES)
    assert len(calls) == 3


def test_backoff_grows_exponentially_within_its_cap() -> None:
    policy = RetryPolicy(initial_backoff_s=0.1, max_backoff_s=1.0, multiplier=2.0)
    for retry_number, ceiling in ((0, 0.1), (1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (10, 1.0)):
        delays = [policy.backoff_s(retry_number) for _ in range(200)]
        assert min(delays) >= 0
        assert max(delays) <= ceiling
        assert max(delays) > ceiling / 2  # full jitter spreads over the range


# ---- against real servers that refuse, then recover ------------------------------------------------


async def test_background_batching_through_a_database_outage_stores_every_item_once(engine_dir: Path) -> None:
    # Test fixture standing in for a ClickHouse server that goes away and comes back.
    endpoint = ClickHouseHttpFixture(str(engine_dir))
    endpoint.start()
    settings = Settings(
        listen="127.0.0.1:0",
        http_listen=None,
        data_dir=engine_dir,
        clickhouse_url=endpoint.url,
        clickhouse_database=f"sdk_outage_{uuid.uuid4().hex[:8]}",
        admin_key=ADMIN_KEY,
    )
    server = FeedbackServer(settings)
    await server.start()
    project = f"p{uuid.uuid4().hex[:8]}"
    options = BatchingOptions(max_batch_items=50, flush_interval_s=0.05)
    try:
        async with FeedbackClient(
            f"127.0.0.1:{server.port}", api_key=ADMIN_KEY, project=project, retry=FAST_RETRY, batching=options
        ) as sdk:
            logged = [sdk.log(thumbs_up(f"before-{n}")) for n in range(200)]
            assert await sdk.flush(timeout_s=30)
            port = endpoint.port
            await asyncio.to_thread(endpoint.stop)
            # The server now refuses every write with UNAVAILABLE; the SDK keeps the items and retries.
            logged += [sdk.log(thumbs_up(f"during-{n}")) for n in range(200)]
            await asyncio.sleep(1.0)
            during = sdk.batch_stats()
            endpoint = ClickHouseHttpFixture(str(engine_dir), port=port)
            await asyncio.to_thread(endpoint.start)
            assert await sdk.flush(timeout_s=30)
            after = sdk.batch_stats()
            stored = await all_ids(sdk, project)
        counts = await raw_row_counts(server, project)
    finally:
        await server.stop(grace_s=1)
        endpoint.stop()
    assert during.sent == 200
    assert during.retries > 0
    assert during.pending == 200
    assert (after.sent, after.failed, after.dropped) == (400, 0, 0)
    assert sorted(stored) == sorted(i for i in logged if i is not None)
    assert counts == (400, 400)


async def test_calls_and_batches_wait_for_a_server_that_is_not_up_yet(tmp_path: Path) -> None:
    port = free_port()
    project = f"p{uuid.uuid4().hex[:8]}"
    async with FeedbackClient(f"127.0.0.1:{port}", api_key=ADMIN_KEY, project=project, retry=FAST_RETRY) as sdk:
        logged = [sdk.log(thumbs_up(f"trace-{n}")) for n in range(50)]
        create = asyncio.create_task(sdk.thumbs_down("trace-direct"))
        await asyncio.sleep(1.0)  # connection refused all along: the SDK keeps retrying
        assert not create.done()
        async with ServerProcess(tmp_path / "data", extra_args=["--listen", f"127.0.0.1:{port}"]):
            direct = await asyncio.wait_for(create, timeout=30)
            assert await sdk.flush(timeout_s=30)
            stored = await all_ids(sdk, project)
            stats = sdk.batch_stats()
    assert sorted(stored) == sorted([direct.feedback_id, *(i for i in logged if i is not None)])
    assert stats.retries > 0
    assert stats.failed == 0


async def test_rate_limited_batches_are_retried_after_the_servers_delay(
    engine_dir: Path, client: FeedbackClient
) -> None:
    settings = Settings(
        listen="127.0.0.1:0",
        http_listen=None,
        data_dir=engine_dir,
        clickhouse_database="api_tests",
        admin_key=ADMIN_KEY,
        rate_limit_per_s=400,
        rate_limit_burst=100,
    )
    server = FeedbackServer(settings)
    await server.start()
    project = f"p{uuid.uuid4().hex[:8]}"
    options = BatchingOptions(max_batch_items=100, flush_interval_s=0.05)
    try:
        async with FeedbackClient(
            f"127.0.0.1:{server.port}", api_key=ADMIN_KEY, project=project, retry=FAST_RETRY, batching=options
        ) as sdk:
            logged = [sdk.log(thumbs_up(f"trace-{n}")) for n in range(600)]
            assert await sdk.flush(timeout_s=60)
            stats = sdk.batch_stats()
    finally:
        await server.stop(grace_s=1)
    assert stats.retries > 0, "600 items at 400/s with a burst of 100 must have met the limit"
    assert (stats.sent, stats.failed) == (600, 0)
    assert sorted(await all_ids(client, project)) == sorted(i for i in logged if i is not None)


# ---- streams that outlive a server restart --------------------------------------------------------


async def test_aggregate_stream_resumes_after_the_server_restarts(tmp_path: Path) -> None:
    port = free_port()
    listen = ["--listen", f"127.0.0.1:{port}"]
    data = tmp_path / "data"
    project = "resume"
    request = pb.StreamAggregatesRequest(
        filter=aggregates_pb2.AggregateFilter(project=project),
        group_by=[aggregates_pb2.GROUP_BY_FIELD_KEY],
        follow=True,
    )
    async with FeedbackClient(f"127.0.0.1:{port}", api_key=ADMIN_KEY, project=project, retry=FAST_RETRY) as sdk:
        first = ServerProcess(data, extra_args=listen)
        await first.start_async()
        try:
            for n in range(3):
                await sdk.thumbs_up(f"trace-{n}")
            stream = sdk.stream_aggregates(request)
            counts = await _counts_until_snapshot(stream)
            assert counts == {"thumbs": 3}
            await first.terminate_async()
        finally:
            first.kill()
        # The stream is broken now; it reopens by itself once a server listens again.
        async with ServerProcess(data, extra_args=listen):
            for n in range(2):
                await sdk.thumbs_down(f"later-{n}")
            counts = await asyncio.wait_for(_counts_until_snapshot(stream, want={"thumbs": 5}), timeout=30)
            await stream.aclose()  # type: ignore[attr-defined]
    assert counts == {"thumbs": 5}


async def _counts_until_snapshot(stream, want: dict[str, int] | None = None) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Group counts by key, read until a snapshot completes (and, given ``want``, until they equal it)."""
    counts: dict[str, int] = {}
    async for message in stream:
        if message.HasField("group"):
            counts[message.group.key.key] = message.group.stats.count
        if message.HasField("snapshot_complete") and (want is None or counts == want):
            return counts
        if want is not None and counts == want:
            return counts
    return counts


async def test_export_resumes_from_its_last_cursor_after_the_server_restarts(tmp_path: Path) -> None:
    port = free_port()
    listen = ["--listen", f"127.0.0.1:{port}"]
    data = tmp_path / "data"
    project = "export-resume"
    request = pb.ExportFeedbackRequest(
        filter=aggregates_pb2.AggregateFilter(project=project), follow=True, chunk_size=2
    )
    received: list[str] = []
    async with FeedbackClient(f"127.0.0.1:{port}", api_key=ADMIN_KEY, project=project, retry=FAST_RETRY) as sdk:
        first = ServerProcess(data, extra_args=listen)
        await first.start_async()
        try:
            before = [(await sdk.thumbs_up(f"trace-{n}")).feedback_id for n in range(5)]
            chunks = sdk.export(request)
            while len(received) < 5:
                chunk = await asyncio.wait_for(anext(chunks), timeout=30)
                received += [f.feedback_id for f in chunk.feedback]
            await first.terminate_async()
        finally:
            first.kill()
        async with ServerProcess(data, extra_args=listen):
            after = [(await sdk.thumbs_down(f"later-{n}")).feedback_id for n in range(3)]
            while len(received) < 8:
                chunk = await asyncio.wait_for(anext(chunks), timeout=30)
                received += [f.feedback_id for f in chunk.feedback]
            await chunks.aclose()  # type: ignore[attr-defined]
    # Nothing twice, nothing skipped: the reopened export started after the last cursor received.
    assert sorted(received) == sorted(before + after)
    assert len(received) == len(set(received))
