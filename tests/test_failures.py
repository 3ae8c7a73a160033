"""Storage outages and a full write queue reach the caller as UNAVAILABLE and RESOURCE_EXHAUSTED."""

from __future__ import annotations

import asyncio
import collections
import functools
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from feedback_proto.v1 import feedback_pb2, feedback_service_pb2_grpc
from feedback_proto.v1 import feedback_service_pb2 as pb
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
        http_listen=None,
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
        http_listen=None,
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


# -- an outage under load, with clients that retry as the API tells them to ---------------------

T = TypeVar("T")
RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}
)
CALL_TIMEOUT_S = 10.0  # each attempt's deadline
GIVE_UP_S = 30.0  # a writer retries one event for at most this long


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    started: float  # time.monotonic()
    latency_s: float
    code: grpc.StatusCode


class RetryingWriters:
    """Writers that send each event under a client-chosen id and resend it, unchanged, until acknowledged."""

    def __init__(self, stub: FeedbackServiceAsyncStub, project: str) -> None:
        self.stub = stub
        self.project = project
        self.sent: dict[str, feedback_pb2.Feedback] = {}
        self.acknowledged: dict[str, feedback_pb2.Feedback] = {}
        self.acknowledged_at: list[float] = []  # time.monotonic() of each acknowledged call
        self.failures: list[FailedAttempt] = []
        self.retried_calls = 0  # calls acknowledged only after at least one failed attempt
        # Retried calls answered with the record of an earlier attempt, whose write landed although the
        # attempt failed: the retry found it by id instead of storing it again.
        self.answered_from_earlier_attempt = 0
        self.item_errors: list[str] = []
        self.stop = asyncio.Event()

    def feedback(self, feedback_id: str) -> feedback_pb2.Feedback:
        sent = thumbs_up(self.project, feedback_id=feedback_id, comment=f"outage {feedback_id}")
        self.sent[feedback_id] = sent
        return sent

    async def until_acknowledged(self, attempt: Callable[[], Awaitable[T]]) -> tuple[T, float | None]:
        """The response, and the wall-clock start of the last attempt if an earlier one failed.

        Exponential backoff with jitter on retryable codes; any other error, or running out of time, raises.
        """
        give_up = time.monotonic() + GIVE_UP_S
        delay = 0.05
        failed = False
        while True:
            started = time.monotonic()
            started_wall = time.time()
            try:
                response = await attempt()
            except grpc.aio.AioRpcError as error:
                self.failures.append(FailedAttempt(started, time.monotonic() - started, error.code()))
                if error.code() not in RETRYABLE or time.monotonic() + delay > give_up:
                    raise
                failed = True
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 1.0)
                continue
            self.retried_calls += failed
            self.acknowledged_at.append(time.monotonic())
            return response, started_wall if failed else None

    def _note_retry(self, records: list[feedback_pb2.Feedback], last_attempt_wall: float | None) -> None:
        if last_attempt_wall is not None and all(
            r.create_time.ToMicroseconds() < last_attempt_wall * 1e6 for r in records
        ):
            self.answered_from_earlier_attempt += 1

    async def single_writer(self, worker: int) -> None:
        n = 0
        while not self.stop.is_set():
            request = pb.CreateFeedbackRequest(feedback=self.feedback(f"s{worker:02d}-{n:06d}"))
            response, retried_at = await self.until_acknowledged(
                functools.partial(self.stub.CreateFeedback, request, timeout=CALL_TIMEOUT_S)
            )
            self.acknowledged[request.feedback.feedback_id] = response.feedback
            self._note_retry([response.feedback], retried_at)
            n += 1

    async def batch_writer(self, worker: int, size: int = 50) -> None:
        n = 0
        while not self.stop.is_set():
            items = [self.feedback(f"b{worker:02d}-{n:05d}-{i:02d}") for i in range(size)]
            request = pb.BatchCreateFeedbackRequest(feedback=items)
            response, retried_at = await self.until_acknowledged(
                functools.partial(self.stub.BatchCreateFeedback, request, timeout=CALL_TIMEOUT_S)
            )
            self._note_retry([r.feedback for r in response.results], retried_at)
            for item, result in zip(items, response.results, strict=True):
                if result.WhichOneof("result") == "feedback":
                    self.acknowledged[item.feedback_id] = result.feedback
                else:
                    self.item_errors.append(f"{item.feedback_id}: {result.error}")
            n += 1

    async def wait_for_acknowledged(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if len(self.acknowledged) >= count or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.02)


async def _serving(health: health_pb2_grpc.HealthStub) -> list[int]:
    statuses = []
    for service in ("", "feedback.v1.FeedbackService"):
        response = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        statuses.append(response.status)
    return statuses


async def test_an_outage_during_ingest_with_client_retries_stores_each_event_once(engine_dir: Path) -> None:
    endpoint = ClickHouseHttpFixture(str(engine_dir))
    endpoint.start()
    settings = Settings(
        listen="127.0.0.1:0",
        http_listen=None,
        data_dir=engine_dir,
        clickhouse_url=endpoint.url,
        clickhouse_database=f"outage_retry_{uuid.uuid4().hex[:8]}",
        admin_key=ADMIN_KEY,
    )
    server = await _started(settings)
    project = f"p{uuid.uuid4().hex[:8]}"
    serving = [health_pb2.HealthCheckResponse.SERVING] * 2
    singles, batchers = 12, 2
    try:
        async with authorized_channel(f"127.0.0.1:{server.port}", ADMIN_KEY) as channel:
            stub: FeedbackServiceAsyncStub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)  # type: ignore[assignment]
            health = health_pb2_grpc.HealthStub(channel)
            writers = RetryingWriters(stub, project)
            tasks = [asyncio.create_task(writers.single_writer(w)) for w in range(singles)]
            tasks += [asyncio.create_task(writers.batch_writer(w)) for w in range(batchers)]
            try:
                await writers.wait_for_acknowledged(300, timeout_s=15)
                assert not any(task.done() for task in tasks), [t.exception() for t in tasks if t.done()]
                acknowledged_before = len(writers.acknowledged)

                # The outage: the ClickHouse endpoint goes away (its threads stop off the event loop, which
                # runs both the server and the writers), stays away ~1.5 s, and comes back on the same port.
                port = endpoint.port
                outage_started = time.monotonic()
                await asyncio.to_thread(endpoint.stop)
                health_during = []
                while time.monotonic() - outage_started < 1.5:
                    health_during.append(await _serving(health))
                    await asyncio.sleep(0.2)
                endpoint = ClickHouseHttpFixture(str(engine_dir), port=port)
                await asyncio.to_thread(endpoint.start)
                outage_ended = time.monotonic()
                acknowledged_at_restart = len(writers.acknowledged)

                # The service recovers by itself: the writers' retries start landing again.
                await writers.wait_for_acknowledged(acknowledged_at_restart + 300, timeout_s=15)
                recovered_at = min((t for t in writers.acknowledged_at if t > outage_ended), default=None)
                writers.stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks), timeout=GIVE_UP_S + 10)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

            health_after = await _serving(health)
            stored: list[feedback_pb2.Feedback] = []
            token = ""
            while True:
                page = await stub.ListFeedback(
                    pb.ListFeedbackRequest(project=project, page_size=1000, page_token=token), timeout=CALL_TIMEOUT_S
                )
                stored.extend(page.feedback)
                token = page.next_page_token
                if not token:
                    break

        # Below the API: ListFeedback reads with FINAL, which would hide a row inserted twice.
        parameters = {"project": project}
        ((rows, distinct_ids),) = await server.engine.run(
            lambda client: (
                client.query(
                    "SELECT count(), uniqExact(feedback_id) FROM feedback WHERE project = {project:String}",
                    parameters=parameters,
                ).result_rows
            )
        )
        extra_rows: Sequence[Sequence[object]] = ()
        if rows != distinct_ids:
            # Tell true duplicates (one revision stored twice) from several revisions of one feedback.
            extra_rows = await server.engine.run(
                lambda client: (
                    client.query(
                        "SELECT feedback_id, count(), uniqExact(revision), groupArray(revision), "
                        "uniqExact(create_time), uniqExact(is_deleted) FROM feedback WHERE project = {project:String} "
                        "GROUP BY feedback_id HAVING count() > 1 ORDER BY feedback_id LIMIT 20",
                        parameters=parameters,
                    ).result_rows
                )
            )
    finally:
        await server.stop(grace_s=1)
        endpoint.stop()

    during = [f for f in writers.failures if outage_started <= f.started <= outage_ended]
    codes = collections.Counter(f.code for f in writers.failures)
    max_failure_s = max((f.latency_s for f in writers.failures), default=0.0)
    copies = collections.Counter(f.feedback_id for f in stored)
    by_id = {f.feedback_id: f for f in stored}
    changed = sorted(i for i, record in writers.acknowledged.items() if by_id.get(i) != record)
    recovery_s = None if recovered_at is None else round(recovered_at - outage_ended, 3)
    report = (
        f"sent {len(writers.sent)}, acknowledged {len(writers.acknowledged)} ({acknowledged_before} before the "
        f"outage, {acknowledged_at_restart} at the restart); outage {outage_ended - outage_started:.2f} s; "
        f"failed attempts {len(writers.failures)} ({len(during)} during the outage) by code {dict(codes)}, "
        f"slowest failure {max_failure_s:.3f} s; calls that needed a retry {writers.retried_calls} "
        f"({writers.answered_from_earlier_attempt} answered with an earlier attempt's record); first "
        f"acknowledgement {recovery_s} s after the restart; stored {len(stored)} listed, {rows} rows for "
        f"{distinct_ids} ids; duplicate rows (id, rows, revisions, revision list, create times, deleted flags): "
        f"{extra_rows}; changed {changed[:5]}; item errors {writers.item_errors[:3]}; health during "
        f"{len(health_during)} checks, after {health_after}"
    )
    print(report)
    # Calls failed fast and retryably while the store was away, and the server kept serving.
    assert during, report
    assert set(codes) <= RETRYABLE, report
    assert grpc.StatusCode.UNAVAILABLE in codes, report
    assert max_failure_s < 5.0, report
    assert health_during, report
    # Readiness follows the database: the feedback service reports NOT_SERVING during the outage,
    # while the process as a whole ("") stays SERVING, so liveness probes leave it running.
    assert all(statuses[0] == health_pb2.HealthCheckResponse.SERVING for statuses in health_during), report
    assert any(statuses[1] == health_pb2.HealthCheckResponse.NOT_SERVING for statuses in health_during), report
    assert health_after == serving, report
    # It recovered by itself, and the writers' retries got every event acknowledged.
    assert recovery_s is not None, report
    assert writers.retried_calls > 0, report
    assert not writers.item_errors, report
    assert set(writers.acknowledged) == set(writers.sent), report
    # Each event stored exactly once, as acknowledged, with no physical duplicate under FINAL.
    assert len(stored) == len(writers.sent), report
    assert set(copies) == set(writers.sent), report
    assert max(copies.values()) == 1, report
    assert not changed, report
    assert rows == distinct_ids == len(writers.sent), report
