"""StreamAggregates: exact snapshots, one vote per user, grouping, and live follow streams."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from feedback_proto.v1 import aggregates_pb2 as agg
from feedback_proto.v1 import feedback_pb2, feedback_service_pb2_grpc
from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_service.config import Settings
from feedback_service.server import FeedbackServer
from feedback_service.store import deriver
from tests.helpers import field_violations, thumbs_up
from tests.support.auth import ADMIN_KEY, authorized_channel
from tests.support.brute_force import GroupTuple, assert_stats_match, authors_by_group, expected_groups

if TYPE_CHECKING:  # the async stub class exists only in the .pyi stubs
    from feedback_proto.v1.feedback_service_pb2_grpc import FeedbackServiceAsyncStub as FeedbackServiceStub

ALL_DIMENSIONS = [
    agg.GROUP_BY_FIELD_MODEL,
    agg.GROUP_BY_FIELD_MODEL_VERSION,
    agg.GROUP_BY_FIELD_KEY,
    agg.GROUP_BY_FIELD_SOURCE,
]


def _key(group: agg.AggregateGroup) -> tuple[str, str, str, int]:
    return (group.key.model, group.key.model_version, group.key.key, int(group.key.source))


async def snapshot(stub: FeedbackServiceStub, request: pb.StreamAggregatesRequest) -> list[agg.AggregateGroup]:
    groups: list[agg.AggregateGroup] = []
    async for message in stub.StreamAggregates(request):
        if message.WhichOneof("event") == "group":
            groups.append(message.group)
        else:
            assert message.WhichOneof("event") == "snapshot_complete"
            assert message.snapshot_complete.group_count == len(groups)
    return groups


async def all_feedback(stub: FeedbackServiceStub, project: str) -> list[feedback_pb2.Feedback]:
    found: list[feedback_pb2.Feedback] = []
    token = ""
    while True:
        page = await stub.ListFeedback(pb.ListFeedbackRequest(project=project, page_size=1000, page_token=token))
        found += page.feedback
        token = page.next_page_token
        if not token:
            return found


async def assert_matches_brute_force(
    stub: FeedbackServiceStub, project: str, *, gone_authors: Mapping[GroupTuple, Iterable[str]] | None = None
) -> None:
    """``gone_authors``: per group, authors of feedback deleted or replaced since it was created, which
    distinct_authors still counts (a sketch; see authors_by_group)."""
    expected = expected_groups(await all_feedback(stub, project))
    gone = gone_authors or {}
    # All time (day rows), by day, and from 26 hours ago (minute and hour rows at the start of the range, day
    # rows for the body; all test feedback is from now): every one must be exact.
    since = Timestamp()
    since.FromDatetime(datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=26))
    for bucket, start in (
        (agg.TIME_BUCKET_UNSPECIFIED, None),
        (agg.TIME_BUCKET_DAY, None),
        (agg.TIME_BUCKET_UNSPECIFIED, since),
    ):
        request = pb.StreamAggregatesRequest(
            filter=agg.AggregateFilter(project=project, start_time=start), group_by=ALL_DIMENSIONS, time_bucket=bucket
        )
        groups = {_key(g): g.stats for g in await snapshot(stub, request)}
        assert set(groups) == set(expected)
        for key, stats in groups.items():
            where = f"{key} bucket {bucket} from {start}"
            assert_stats_match(stats, expected[key], where, gone_authors=gone.get(key, ()))


def _mixed(project: str) -> list[feedback_pb2.Feedback]:
    items: list[feedback_pb2.Feedback] = []
    for i in range(30):
        version = "v1" if i % 2 else "v2"
        items.append(
            thumbs_up(
                project,
                model="bot",
                model_version=version,
                author=f"user-{i}",
                thumb=feedback_pb2.THUMB_UP if i % 3 else feedback_pb2.THUMB_DOWN,
            )
        )
        items.append(
            thumbs_up(
                project,
                model="bot",
                model_version=version,
                key="quality",
                score=i / 7,
                source=feedback_pb2.SOURCE_REVIEWER,
                author=f"rev-{i % 4}",
                comment="why" if i % 5 == 0 else "",
            )
        )
        items.append(
            thumbs_up(
                project,
                model="bot",
                model_version=version,
                key="topic",
                label="billing" if i % 2 else "other",
                source=feedback_pb2.SOURCE_AUTOMATED,
                correction="fix" if i % 6 == 0 else "",
            )
        )
    return items


async def test_snapshot_equals_a_brute_force_recomputation(stub: FeedbackServiceStub, project: str) -> None:
    await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=_mixed(project)))
    await assert_matches_brute_force(stub, project)


async def test_updates_and_deletes_change_the_aggregates(stub: FeedbackServiceStub, project: str) -> None:
    response = await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=_mixed(project)))
    stored = [r.feedback for r in response.results]
    for feedback in stored[:20:3]:
        await stub.DeleteFeedback(pb.DeleteFeedbackRequest(project=project, feedback_id=feedback.feedback_id))
    for feedback in stored[1:20:3]:
        change = feedback_pb2.Feedback(project=project, feedback_id=feedback.feedback_id, score=-2.5, comment="c")
        await stub.UpdateFeedback(pb.UpdateFeedbackRequest(feedback=change))
    # The deleted feedback's authors still count among distinct authors: a sketch does not subtract.
    await assert_matches_brute_force(stub, project, gone_authors=authors_by_group(stored[:20:3]))


async def test_an_end_user_counts_once_per_trace_and_key(stub: FeedbackServiceStub, project: str) -> None:
    first = thumbs_up(project, trace_id="t-1", author="alice", model="bot", model_version="v1")
    await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=first))
    toggled = thumbs_up(
        project, trace_id="t-1", author="alice", model="bot", model_version="v1", thumb=feedback_pb2.THUMB_DOWN
    )
    second = (await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=toggled))).feedback
    # Not replaced: another trace, another key, another author, a reviewer, no author.
    others = [
        thumbs_up(project, trace_id="t-2", author="alice"),
        thumbs_up(project, trace_id="t-1", author="alice", key="helpful"),
        thumbs_up(project, trace_id="t-1", author="bob"),
        thumbs_up(project, trace_id="t-1", author="alice", source=feedback_pb2.SOURCE_REVIEWER),
        thumbs_up(project, trace_id="t-1", author=""),
        thumbs_up(project, trace_id="t-1", author=""),
    ]
    await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=others))
    current = await all_feedback(stub, project)
    assert len(current) == 7
    alice_votes = [f for f in current if (f.trace_id, f.key, f.author, f.source) == ("t-1", "thumbs", "alice", 1)]
    assert [f.feedback_id for f in alice_votes] == [second.feedback_id]
    groups = await snapshot(
        stub, pb.StreamAggregatesRequest(filter=agg.AggregateFilter(project=project, models=["bot"]))
    )
    assert len(groups) == 1
    assert (groups[0].stats.count, groups[0].stats.thumbs.up, groups[0].stats.thumbs.down) == (1, 0, 1)
    await assert_matches_brute_force(stub, project)


async def test_votes_in_one_batch_replace_each_other_in_order(stub: FeedbackServiceStub, project: str) -> None:
    votes = [
        thumbs_up(project, trace_id="t", author="carol", thumb=t)
        for t in (feedback_pb2.THUMB_UP, feedback_pb2.THUMB_DOWN, feedback_pb2.THUMB_UP)
    ]
    response = await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=votes))
    current = await all_feedback(stub, project)
    assert [f.feedback_id for f in current] == [response.results[2].feedback.feedback_id]
    await assert_matches_brute_force(stub, project)


async def test_grouping_and_filters_select_the_right_feedback(stub: FeedbackServiceStub, project: str) -> None:
    await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=_mixed(project)))
    everything = await snapshot(stub, pb.StreamAggregatesRequest(filter=agg.AggregateFilter(project=project)))
    assert len(everything) == 1
    assert everything[0].stats.count == 90
    by_version = await snapshot(
        stub,
        pb.StreamAggregatesRequest(
            filter=agg.AggregateFilter(project=project, keys=["thumbs", "quality"], sources=[feedback_pb2.SOURCE_USER]),
            group_by=[agg.GROUP_BY_FIELD_MODEL_VERSION],
        ),
    )
    assert [(g.key.model_version, g.key.key, g.stats.count) for g in by_version] == [("v1", "", 15), ("v2", "", 15)]
    per_day = await snapshot(
        stub, pb.StreamAggregatesRequest(filter=agg.AggregateFilter(project=project), time_bucket=agg.TIME_BUCKET_DAY)
    )
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert [(g.key.bucket_start.ToDatetime(tzinfo=UTC), g.stats.count) for g in per_day] == [(today, 90)]
    start = Timestamp()
    start.FromDatetime(datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2))
    future = await snapshot(
        stub, pb.StreamAggregatesRequest(filter=agg.AggregateFilter(project=project, start_time=start))
    )
    assert future == []


def _minute(offset: int, second: int = 0) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime(2026, 1, 1, 12, offset, second, tzinfo=UTC))
    return stamp


@pytest.mark.parametrize(
    ("request_fields", "field", "words"),
    [
        ({"group_by": [0]}, "group_by", "unknown dimension"),
        ({"group_by": [9]}, "group_by", "unknown dimension"),
        ({"group_by": [1, 1]}, "group_by", "must not repeat"),
        ({"time_bucket": 7}, "time_bucket", "unknown time bucket"),
        ({"filter": {"start_time": _minute(5), "end_time": _minute(5)}}, "filter.end_time", "empty or inverted"),
        ({"filter": {"start_time": _minute(6), "end_time": _minute(5)}}, "filter.end_time", "empty or inverted"),
        ({"filter": {"start_time": _minute(5, 30)}}, "filter.start_time", "whole minute"),
        ({"filter": {"sources": [8]}}, "filter.sources", "unknown source"),
        ({"filter": {"start_time": Timestamp(seconds=0)}}, "filter.start_time", "before 2000"),
        ({"filter": {"end_time": Timestamp(seconds=4_000_000_000)}}, "filter.end_time", "in the future"),
        ({"filter": {"project": ""}}, "filter.project", "is required"),
    ],
)
async def test_bad_aggregate_requests_are_invalid_argument(
    stub: FeedbackServiceStub, project: str, request_fields: dict[str, Any], field: str, words: str
) -> None:
    filter_fields = {"project": project, **request_fields.pop("filter", {})}
    request = pb.StreamAggregatesRequest(filter=agg.AggregateFilter(**filter_fields), **request_fields)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await snapshot(stub, request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in field_violations(caught.value)[field]


async def _next_group(stream: Any) -> agg.AggregateGroup:
    """The next group message, skipping heartbeats; fails after 5 s."""
    while True:
        message: pb.StreamAggregatesResponse = await asyncio.wait_for(stream.read(), 5.0)
        if message.WhichOneof("event") == "group":
            return message.group


async def test_follow_pushes_creates_updates_and_deletes(stub: FeedbackServiceStub, project: str) -> None:
    request = pb.StreamAggregatesRequest(
        filter=agg.AggregateFilter(project=project), group_by=[agg.GROUP_BY_FIELD_KEY], follow=True
    )
    stream = stub.StreamAggregates(request, timeout=60)
    first = await asyncio.wait_for(stream.read(), 5)
    assert first.WhichOneof("event") == "snapshot_complete"
    assert first.snapshot_complete.group_count == 0
    try:
        created = (await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project)))).feedback
        group = await _next_group(stream)
        assert (group.key.key, group.stats.count, group.stats.thumbs.up) == ("thumbs", 1, 1)

        change = feedback_pb2.Feedback(project=project, feedback_id=created.feedback_id, thumb=feedback_pb2.THUMB_DOWN)
        await stub.UpdateFeedback(pb.UpdateFeedbackRequest(feedback=change))
        group = await _next_group(stream)
        assert (group.stats.count, group.stats.thumbs.up, group.stats.thumbs.down) == (1, 0, 1)

        await stub.DeleteFeedback(pb.DeleteFeedbackRequest(project=project, feedback_id=created.feedback_id))
        group = await _next_group(stream)
        assert (group.key.key, group.stats.count) == ("thumbs", 0)
    finally:
        stream.cancel()


async def test_a_follower_hears_of_a_write_before_the_deriver_would_go_by_itself(
    stub: FeedbackServiceStub, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deriver waits DERIVE_DELAY_S for more writes unless a reader waits. Followers are told of a write
    when it is stored, and their read makes the deriver go: with the delay at 60 s (and the write marker
    unchanged until the derive), the pushed group can only come from that."""
    monkeypatch.setattr(deriver, "DERIVE_DELAY_S", 60.0)
    request = pb.StreamAggregatesRequest(
        filter=agg.AggregateFilter(project=project), group_by=[agg.GROUP_BY_FIELD_KEY], follow=True
    )
    stream = stub.StreamAggregates(request, timeout=60)
    try:
        await asyncio.wait_for(stream.read(), 5)  # empty snapshot
        await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project)))
        group = await asyncio.wait_for(_next_group(stream), 20)
        assert (group.key.key, group.stats.count, group.stats.thumbs.up) == ("thumbs", 1, 1)
    finally:
        stream.cancel()


async def test_follow_sends_heartbeats_with_a_rising_watermark(stub: FeedbackServiceStub, project: str) -> None:
    request = pb.StreamAggregatesRequest(filter=agg.AggregateFilter(project=project), follow=True)
    stream = stub.StreamAggregates(request, timeout=30)
    try:
        done = await asyncio.wait_for(stream.read(), 5)
        watermarks = [done.snapshot_complete.watermark.ToDatetime()]
        for _ in range(2):
            beat = await asyncio.wait_for(stream.read(), 5.5)  # at least every 5 s
            assert beat.WhichOneof("event") == "heartbeat"
            watermarks.append(beat.heartbeat.watermark.ToDatetime())
        assert watermarks == sorted(watermarks)
        assert watermarks[-1] > watermarks[0]
    finally:
        stream.cancel()


async def test_follow_ends_at_the_deadline(stub: FeedbackServiceStub, project: str) -> None:
    request = pb.StreamAggregatesRequest(filter=agg.AggregateFilter(project=project), follow=True)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.StreamAggregates(request, timeout=1.5):
            pass
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_a_burst_reaches_a_reader_as_the_latest_state_not_every_step(
    stub: FeedbackServiceStub, project: str
) -> None:
    request = pb.StreamAggregatesRequest(
        filter=agg.AggregateFilter(project=project), group_by=[agg.GROUP_BY_FIELD_KEY], follow=True
    )
    stream = stub.StreamAggregates(request, timeout=60)
    try:
        await asyncio.wait_for(stream.read(), 5)  # empty snapshot
        # 20 creates at once; the reader does not read meanwhile.
        await asyncio.gather(
            *(stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project))) for _ in range(20))
        )
        counts: list[int] = []
        deadline = time.monotonic() + 5
        while (not counts or counts[-1] < 20) and time.monotonic() < deadline:
            counts.append((await _next_group(stream)).stats.count)
        assert counts[-1] == 20
        assert counts == sorted(counts)
        assert len(counts) <= 5, f"every intermediate state was sent: {counts}"
    finally:
        stream.cancel()


async def test_writes_through_another_replica_reach_a_follow_stream(
    engine_dir: Path, server: FeedbackServer, stub: FeedbackServiceStub, project: str
) -> None:
    # A second server on the same engine and database stands in for another replica:
    # its writes do not notify this server's streams, so only polling finds them.
    other = FeedbackServer(
        Settings(
            listen="127.0.0.1:0",
            http_listen=None,
            data_dir=engine_dir,
            clickhouse_database=server.settings.clickhouse_database,
            admin_key=ADMIN_KEY,
        )
    )
    await other.start()
    try:
        request = pb.StreamAggregatesRequest(filter=agg.AggregateFilter(project=project), follow=True)
        stream = stub.StreamAggregates(request, timeout=30)
        await asyncio.wait_for(stream.read(), 5)
        async with authorized_channel(f"127.0.0.1:{other.port}", ADMIN_KEY) as channel:
            other_stub: FeedbackServiceStub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)  # type: ignore[assignment]
            await other_stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project)))
        group = await _next_group(stream)
        assert group.stats.count == 1
        stream.cancel()
    finally:
        await other.stop(grace_s=1)


async def test_an_idle_follow_stream_does_not_recompute_its_snapshot(
    stub: FeedbackServiceStub, server: FeedbackServer, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    aggregate = server.store.aggregate
    calls: list[str] = []

    async def counted(query: Any) -> Any:
        calls.append(query.scope.project)
        return await aggregate(query)

    monkeypatch.setattr(server.store, "aggregate", counted)
    request = pb.StreamAggregatesRequest(filter=agg.AggregateFilter(project=project), follow=True)
    stream = stub.StreamAggregates(request, timeout=30)
    try:
        await asyncio.wait_for(stream.read(), 5)  # snapshot complete
        beat = await asyncio.wait_for(stream.read(), 5.5)  # a heartbeat, about 2 s later
        assert beat.WhichOneof("event") == "heartbeat"
        assert calls.count(project) == 1, "an idle stream re-ran its aggregate query"
        await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project)))
        assert (await _next_group(stream)).stats.count == 1
    finally:
        stream.cancel()


async def test_a_cancelled_follow_stream_stops_its_work(
    stub: FeedbackServiceStub, server: FeedbackServer, project: str
) -> None:
    async def settled_count() -> int:
        """Subscribers once streams that earlier tests cancelled have wound down."""
        for _ in range(50):
            if server.store.changes.subscriber_count() == 0:
                break
            await asyncio.sleep(0.1)
        return server.store.changes.subscriber_count()

    before = await settled_count()
    request = pb.StreamAggregatesRequest(filter=agg.AggregateFilter(project=project), follow=True)
    stream = stub.StreamAggregates(request, timeout=30)
    await asyncio.wait_for(stream.read(), 5)
    assert server.store.changes.subscriber_count() == before + 1
    stream.cancel()
    for _ in range(50):  # the server notices the cancellation at its next step
        if server.store.changes.subscriber_count() == before:
            break
        await asyncio.sleep(0.1)
    assert server.store.changes.subscriber_count() == before, "the stream kept running after its client left"
