"""The SDK's background batching against the real server: when it flushes, what it drops, what it reports."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable

import grpc

from feedback_client import BatchingOptions, FeedbackClient, FeedbackError, RetryPolicy, score, thumbs_up
from feedback_proto.v1 import feedback_pb2
from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_service.server import FeedbackServer
from tests.support.auth import ADMIN_KEY
from tests.support.ports import free_port
from tests.support.server_process import child_environment


async def stored_ids(client: FeedbackClient, project: str) -> list[str]:
    request = pb.ListFeedbackRequest(project=project, page_size=1000)
    return [feedback.feedback_id async for feedback in client.iter_feedback(request)]


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_log_returns_at_once_and_sends_a_batch_when_it_is_full(
    server: FeedbackServer, client: FeedbackClient, project: str
) -> None:
    options = BatchingOptions(max_batch_items=10, flush_interval_s=3600)
    async with FeedbackClient(f"127.0.0.1:{server.port}", api_key=ADMIN_KEY, project=project, batching=options) as sdk:
        ids = [sdk.log(thumbs_up(f"trace-{n}")) for n in range(25)]
        # Two full batches go out by themselves; the last five wait for the interval, which never comes.
        await eventually(lambda: _sent_is(sdk, 20))
        assert len(await stored_ids(client, project)) == 20
        stats = sdk.batch_stats()
        assert (stats.logged, stats.sent, stats.batches, stats.pending) == (25, 20, 2, 5)
        assert await sdk.flush(timeout_s=10)
        assert sorted(await stored_ids(client, project)) == sorted(i for i in ids if i is not None)


async def _sent_is(sdk: FeedbackClient, count: int) -> bool:
    return sdk.batch_stats().sent == count


async def test_a_partial_batch_goes_out_after_the_flush_interval(
    server: FeedbackServer, client: FeedbackClient, project: str
) -> None:
    options = BatchingOptions(max_batch_items=1000, flush_interval_s=0.2)
    async with FeedbackClient(f"127.0.0.1:{server.port}", api_key=ADMIN_KEY, project=project, batching=options) as sdk:
        for n in range(3):
            sdk.log(score(f"trace-{n}", key="helpfulness", value=n))
        await eventually(lambda: _sent_is(sdk, 3), timeout_s=5)
        assert sdk.batch_stats().batches == 1
        assert len(await stored_ids(client, project)) == 3


async def test_close_delivers_what_is_buffered(server: FeedbackServer, client: FeedbackClient, project: str) -> None:
    options = BatchingOptions(flush_interval_s=3600)
    sdk = FeedbackClient(f"127.0.0.1:{server.port}", api_key=ADMIN_KEY, project=project, batching=options)
    ids = {sdk.log(thumbs_up(f"trace-{n}")) for n in range(7)}
    assert await stored_ids(client, project) == []
    await sdk.close()
    assert set(await stored_ids(client, project)) == ids


async def test_interpreter_exit_delivers_what_is_buffered(
    server: FeedbackServer, client: FeedbackClient, project: str
) -> None:
    # A script that logs and simply ends: no flush, no close. The atexit hook must deliver.
    script = textwrap.dedent(
        f"""
        from feedback_client import BatchingOptions, SyncFeedbackClient, thumbs_down
        client = SyncFeedbackClient("127.0.0.1:{server.port}", api_key="{ADMIN_KEY}", project="{project}",
                                    batching=BatchingOptions(flush_interval_s=3600))
        for n in range(5):
            print(client.log(thumbs_down("trace-%d" % n)))
        """
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        env=child_environment(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == 0, err.decode()
    logged = set(out.decode().split())
    assert len(logged) == 5
    assert set(await stored_ids(client, project)) == logged


async def test_a_full_buffer_with_the_drop_policy_drops_and_counts() -> None:
    # Nothing listens, so nothing leaves the buffer; close gives up quickly and reports every item.
    failures: list[tuple[str, grpc.StatusCode]] = []
    options = BatchingOptions(
        max_batch_items=5,
        max_buffer_items=5,
        full_buffer="drop",
        flush_interval_s=3600,
        close_timeout_s=0.5,
        on_error=lambda item, error: failures.append((item.feedback_id, error.code)),
    )
    sdk = FeedbackClient(f"127.0.0.1:{free_port()}", api_key=ADMIN_KEY, project="p", batching=options)
    results = [sdk.log(thumbs_up(f"trace-{n}")) for n in range(8)]
    assert [r is None for r in results] == [False] * 5 + [True] * 3
    await sdk.close()
    stats = sdk.batch_stats()
    assert (stats.logged, stats.dropped, stats.sent, stats.failed, stats.pending) == (5, 3, 0, 5, 0)
    assert sorted(failures) == sorted((r, grpc.StatusCode.UNAVAILABLE) for r in results if r is not None)


async def test_a_full_buffer_with_the_block_policy_waits_then_drops() -> None:
    options = BatchingOptions(
        max_batch_items=2, max_buffer_items=2, full_buffer="block", block_timeout_s=0.3, close_timeout_s=0.2
    )
    sdk = FeedbackClient(f"127.0.0.1:{free_port()}", api_key=ADMIN_KEY, project="p", batching=options)
    sdk.log(thumbs_up("a"))
    sdk.log(thumbs_up("b"))
    started = time.monotonic()
    assert sdk.log(thumbs_up("c")) is None
    assert time.monotonic() - started >= 0.3
    await sdk.close()
    stats = sdk.batch_stats()
    assert (stats.blocked, stats.dropped, stats.failed) == (1, 1, 2)


async def test_items_the_server_refuses_are_reported_not_retried(
    server: FeedbackServer, client: FeedbackClient, project: str
) -> None:
    refused: list[FeedbackError] = []
    options = BatchingOptions(on_error=lambda item, error: refused.append(error))
    async with FeedbackClient(f"127.0.0.1:{server.port}", api_key=ADMIN_KEY, project=project, batching=options) as sdk:
        good = sdk.log(thumbs_up("trace-1"))
        sdk.log(feedback_pb2.Feedback(trace_id="trace-2", key="Bad Key", score=1))
        assert await sdk.flush(timeout_s=10)
        stats = sdk.batch_stats()
    assert (stats.sent, stats.failed, stats.retries) == (1, 1, 0)
    assert [e.code for e in refused] == [grpc.StatusCode.INVALID_ARGUMENT]
    assert refused[0].field_violations[0].field == "feedback.key"
    assert await stored_ids(client, project) == [good]


async def test_batches_respect_the_byte_limit(server: FeedbackServer, client: FeedbackClient, project: str) -> None:
    options = BatchingOptions(max_batch_bytes=64 * 1024, flush_interval_s=3600)
    async with FeedbackClient(f"127.0.0.1:{server.port}", api_key=ADMIN_KEY, project=project, batching=options) as sdk:
        for n in range(10):
            sdk.log(thumbs_up(f"trace-{n}", comment="x" * 9_000))  # ~9 KB each: 7 fit in 64 KiB
        assert await sdk.flush(timeout_s=10)
        assert sdk.batch_stats().batches == 2
    assert len(await stored_ids(client, project)) == 10


async def test_several_batches_in_flight_deliver_every_item_once(
    server: FeedbackServer, client: FeedbackClient, project: str
) -> None:
    options = BatchingOptions(max_batch_items=100, max_in_flight=4, flush_interval_s=3600)
    async with FeedbackClient(f"127.0.0.1:{server.port}", api_key=ADMIN_KEY, project=project, batching=options) as sdk:
        ids = [sdk.log(thumbs_up(f"trace-{n}", author=f"user-{n}")) for n in range(1_050)]
        assert await sdk.flush(timeout_s=30)
        stats = sdk.batch_stats()
    assert (stats.sent, stats.failed, stats.batches) == (1_050, 0, 11)
    assert sorted(await stored_ids(client, project)) == sorted(i for i in ids if i is not None)


def test_batching_options_refuse_nonsense() -> None:
    for bad in (
        {"max_batch_items": 0},
        {"max_batch_items": 1001},
        {"flush_interval_s": 0},
        {"full_buffer": "wait"},
        {"max_in_flight": 0},
    ):
        try:
            BatchingOptions(**bad)
        except ValueError as error:
            assert str(error)
        else:
            raise AssertionError(f"accepted {bad}")
    assert RetryPolicy().max_attempts == 5
