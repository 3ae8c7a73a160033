"""GetFeedback and ListFeedback: filters, newest-first order, pagination."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from feedback_proto.v1 import feedback_pb2
from feedback_proto.v1 import feedback_service_pb2 as pb
from tests.helpers import field_violations, thumbs_up

if TYPE_CHECKING:  # the async stub class exists only in the .pyi stubs
    from feedback_proto.v1.feedback_service_pb2_grpc import FeedbackServiceAsyncStub as FeedbackServiceStub


async def test_get_of_a_missing_feedback_is_not_found(stub: FeedbackServiceStub, project: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetFeedback(pb.GetFeedbackRequest(project=project, feedback_id="nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nope" in (caught.value.details() or "")


async def test_get_needs_project_and_id(stub: FeedbackServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetFeedback(pb.GetFeedbackRequest())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {"project", "feedback_id"}


async def test_get_does_not_cross_projects(stub: FeedbackServiceStub, project: str) -> None:
    stored = (await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project)))).feedback
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetFeedback(pb.GetFeedbackRequest(project=project + "-x", feedback_id=stored.feedback_id))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_filters_combine(stub: FeedbackServiceStub, project: str) -> None:
    rows = [
        thumbs_up(project, feedback_id="a", model="m1", model_version="v1", author="ann", trace_id="A" * 32),
        thumbs_up(project, feedback_id="b", model="m1", model_version="v2", author="bob", key="helpfulness"),
        thumbs_up(project, feedback_id="c", model="m2", model_version="v1", source=feedback_pb2.SOURCE_REVIEWER),
    ]
    await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=rows))

    async def ids(**filters: object) -> list[str]:
        page = await stub.ListFeedback(pb.ListFeedbackRequest(project=project, **filters))  # type: ignore[arg-type]
        return sorted(f.feedback_id for f in page.feedback)

    assert await ids() == ["a", "b", "c"]
    assert await ids(model="m1") == ["a", "b"]
    assert await ids(model="m1", model_version="v1") == ["a"]
    assert await ids(model_version="v1") == ["a", "c"]
    assert await ids(key="helpfulness") == ["b"]
    assert await ids(source=feedback_pb2.SOURCE_REVIEWER) == ["c"]
    assert await ids(source=feedback_pb2.SOURCE_USER) == ["a", "b"]
    assert await ids(author="bob") == ["b"]
    assert await ids(trace_id="a" * 32) == ["a"]  # 32-hex trace ids match in any case
    assert await ids(model="m3") == []


async def test_list_time_range_is_start_inclusive_end_exclusive(stub: FeedbackServiceStub, project: str) -> None:
    first = (await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project)))).feedback
    await asyncio.sleep(0.01)
    second = (await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project)))).feedback

    async def ids(start: Timestamp | None, end: Timestamp | None) -> list[str]:
        request = pb.ListFeedbackRequest(project=project, start_time=start, end_time=end)
        return [f.feedback_id for f in (await stub.ListFeedback(request)).feedback]

    assert await ids(first.create_time, second.create_time) == [first.feedback_id]
    assert await ids(second.create_time, None) == [second.feedback_id]
    assert await ids(None, first.create_time) == []
    later = Timestamp()
    later.FromDatetime(datetime.now(UTC) + timedelta(minutes=30))
    assert await ids(later, None) == []


async def test_list_with_end_before_start_is_refused(stub: FeedbackServiceStub, project: str) -> None:
    start, end = Timestamp(seconds=1_700_000_000), Timestamp(seconds=1_600_000_000)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListFeedback(pb.ListFeedbackRequest(project=project, start_time=start, end_time=end))
    assert "end_time" in field_violations(caught.value)


async def test_pagination_over_2500_rows_has_no_gap_and_no_repeat(stub: FeedbackServiceStub, project: str) -> None:
    created: list[str] = []
    for start in range(0, 2500, 1000):
        items = [thumbs_up(project, feedback_id=f"id-{i:05d}") for i in range(start, min(start + 1000, 2500))]
        response = await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=items))
        created += [r.feedback.feedback_id for r in response.results]
    seen: list[feedback_pb2.Feedback] = []
    token = ""
    pages = 0
    while True:
        page = await stub.ListFeedback(pb.ListFeedbackRequest(project=project, page_size=300, page_token=token))
        pages += 1
        seen += page.feedback
        # New feedback arriving mid-listing must not disturb the pages still to come.
        await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project, feedback_id=f"late-{pages}")))
        token = page.next_page_token
        if not token:
            break
    ids = [f.feedback_id for f in seen]
    assert len(ids) == len(set(ids)) == 2500
    assert set(ids) == set(created)
    assert pages == 9
    order = [(f.create_time.ToMicroseconds(), f.feedback_id) for f in seen]
    assert order == sorted(order, reverse=True)  # newest first


async def test_page_size_defaults_to_100_and_caps_at_1000(stub: FeedbackServiceStub, project: str) -> None:
    for _ in range(2):
        items = [thumbs_up(project) for _ in range(1000)]
        await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=items))
    default_page = await stub.ListFeedback(pb.ListFeedbackRequest(project=project))
    assert len(default_page.feedback) == 100
    assert default_page.next_page_token
    capped = await stub.ListFeedback(pb.ListFeedbackRequest(project=project, page_size=5000))
    assert len(capped.feedback) == 1000


async def test_a_page_token_is_bound_to_its_filters(stub: FeedbackServiceStub, project: str) -> None:
    await stub.BatchCreateFeedback(
        pb.BatchCreateFeedbackRequest(feedback=[thumbs_up(project, model="m") for _ in range(3)])
    )
    page = await stub.ListFeedback(pb.ListFeedbackRequest(project=project, model="m", page_size=1))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListFeedback(pb.ListFeedbackRequest(project=project, model="n", page_token=page.next_page_token))
    assert "different filters" in field_violations(caught.value)["page_token"]


@pytest.mark.parametrize("token", ["garbage", "!!!", "W10", "WzEsIngiLCJ5IiwxXQ"])
async def test_a_forged_page_token_is_refused(stub: FeedbackServiceStub, project: str, token: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListFeedback(pb.ListFeedbackRequest(project=project, page_token=token))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in field_violations(caught.value)


async def test_negative_page_size_is_refused(stub: FeedbackServiceStub, project: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListFeedback(pb.ListFeedbackRequest(project=project, page_size=-1))
    assert "page_size" in field_violations(caught.value)


@pytest.mark.parametrize(
    ("field", "moment", "words"),
    [
        ("start_time", datetime(1999, 12, 31, tzinfo=UTC), "before 2000"),
        ("end_time", datetime.now(UTC) + timedelta(hours=2), "1 hour in the future"),
    ],
)
async def test_list_timestamps_must_lie_between_2000_and_an_hour_from_now(
    stub: FeedbackServiceStub, project: str, field: str, moment: datetime, words: str
) -> None:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    request = pb.ListFeedbackRequest(project=project)
    getattr(request, field).CopyFrom(stamp)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListFeedback(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in field_violations(caught.value)[field]
