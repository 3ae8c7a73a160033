"""ExportFeedback: stable order, resumable cursors with no gap and no repeat, follow, bad cursors."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import grpc
import pytest

from feedback_proto.v1 import aggregates_pb2 as agg
from feedback_proto.v1 import feedback_pb2
from feedback_proto.v1 import feedback_service_pb2 as pb
from tests.helpers import field_violations, thumbs_up

if TYPE_CHECKING:  # the async stub class exists only in the .pyi stubs
    from feedback_proto.v1.feedback_service_pb2_grpc import FeedbackServiceAsyncStub as FeedbackServiceStub


async def export(stub: FeedbackServiceStub, request: pb.ExportFeedbackRequest) -> list[pb.ExportFeedbackResponse]:
    return [chunk async for chunk in stub.ExportFeedback(request)]


def ids(chunks: list[pb.ExportFeedbackResponse]) -> list[str]:
    return [f.feedback_id for chunk in chunks for f in chunk.feedback]


async def test_export_is_ordered_and_resumes_from_every_cursor_exactly(stub: FeedbackServiceStub, project: str) -> None:
    for start in range(0, 250, 50):
        items = [thumbs_up(project, feedback_id=f"e{i:04d}") for i in range(start, start + 50)]
        await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=items))
    request = pb.ExportFeedbackRequest(filter=agg.AggregateFilter(project=project), chunk_size=40)
    chunks = await export(stub, request)
    everything = ids(chunks)
    assert sorted(everything) == [f"e{i:04d}" for i in range(250)]
    order = [(f.create_time.ToMicroseconds(), f.feedback_id) for chunk in chunks for f in chunk.feedback]
    assert order == sorted(order)
    assert [len(chunk.feedback) for chunk in chunks] == [40] * 6 + [10]
    for position, chunk in enumerate(chunks):
        resumed = await export(
            stub,
            pb.ExportFeedbackRequest(filter=agg.AggregateFilter(project=project), chunk_size=40, cursor=chunk.cursor),
        )
        assert ids(resumed) == everything[40 * (position + 1) :]


async def test_resuming_while_feedback_arrives_has_no_gap_and_no_repeat(
    stub: FeedbackServiceStub, project: str
) -> None:
    seen: list[str] = []
    cursor = ""
    written: list[str] = []

    async def writer() -> None:
        for round_ in range(20):
            items = [thumbs_up(project, feedback_id=f"w{round_:02d}-{i:02d}") for i in range(25)]
            await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=items))
            written.extend(item.feedback_id for item in items)
            await asyncio.sleep(0.01)

    writing = asyncio.create_task(writer())
    while True:
        request = pb.ExportFeedbackRequest(filter=agg.AggregateFilter(project=project), chunk_size=30, cursor=cursor)
        stream = stub.ExportFeedback(request)
        chunk = await stream.read()
        stream.cancel()  # take one chunk per connection, as a job resuming after each crash would
        if chunk is grpc.aio.EOF:
            if writing.done():
                break
            await asyncio.sleep(0.02)
            continue
        seen += [f.feedback_id for f in chunk.feedback]
        cursor = chunk.cursor
    await writing
    final = await export(stub, pb.ExportFeedbackRequest(filter=agg.AggregateFilter(project=project), cursor=cursor))
    seen += ids(final)
    assert len(seen) == len(set(seen)), "a record was exported twice"
    assert sorted(seen) == sorted(written), "a record was skipped"


async def test_follow_tails_new_feedback(stub: FeedbackServiceStub, project: str) -> None:
    await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project, feedback_id="old")))
    request = pb.ExportFeedbackRequest(filter=agg.AggregateFilter(project=project), follow=True)
    stream = stub.ExportFeedback(request, timeout=30)
    try:
        first = await asyncio.wait_for(stream.read(), 5)
        assert [f.feedback_id for f in first.feedback] == ["old"]
        await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project, feedback_id="new")))
        second = await asyncio.wait_for(stream.read(), 3)
        assert [f.feedback_id for f in second.feedback] == ["new"]
    finally:
        stream.cancel()


async def test_follow_after_full_pages_resumes_after_the_last_one(stub: FeedbackServiceStub, project: str) -> None:
    """Full pages are read ahead; when they run out, following continues after the last record sent."""
    for feedback_id in ("a", "b", "c", "d"):
        await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project, feedback_id=feedback_id)))
    request = pb.ExportFeedbackRequest(filter=agg.AggregateFilter(project=project), chunk_size=2, follow=True)
    stream = stub.ExportFeedback(request, timeout=30)
    try:
        pages = [await asyncio.wait_for(stream.read(), 5) for _ in range(2)]
        assert [[f.feedback_id for f in page.feedback] for page in pages] == [["a", "b"], ["c", "d"]]
        await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project, feedback_id="e")))
        tail = await asyncio.wait_for(stream.read(), 3)
        assert [f.feedback_id for f in tail.feedback] == ["e"]
    finally:
        stream.cancel()


async def test_export_filters_select_corrections_of_one_version(stub: FeedbackServiceStub, project: str) -> None:
    items = [
        thumbs_up(project, feedback_id="fix-v2", model="bot", model_version="v2", correction="right answer"),
        thumbs_up(project, feedback_id="fix-v1", model="bot", model_version="v1", correction="right answer"),
        thumbs_up(project, feedback_id="plain-v2", model="bot", model_version="v2"),
        thumbs_up(project, feedback_id="note-v2", model="bot", model_version="v2", comment="hm"),
    ]
    await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=items))
    scope = agg.AggregateFilter(project=project, models=["bot"], model_versions=["v2"])
    corrections = await export(stub, pb.ExportFeedbackRequest(filter=scope, only_with_correction=True))
    assert ids(corrections) == ["fix-v2"]
    assert corrections[0].feedback[0].correction == "right answer"
    comments = await export(stub, pb.ExportFeedbackRequest(filter=scope, only_with_comment=True))
    assert ids(comments) == ["note-v2"]
    deleted = await stub.DeleteFeedback(pb.DeleteFeedbackRequest(project=project, feedback_id="fix-v2"))
    assert deleted == pb.DeleteFeedbackResponse()
    assert ids(await export(stub, pb.ExportFeedbackRequest(filter=scope, only_with_correction=True))) == []


async def test_a_cursor_from_another_filter_or_project_is_refused(stub: FeedbackServiceStub, project: str) -> None:
    await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=[thumbs_up(project) for _ in range(3)]))
    chunks = await export(stub, pb.ExportFeedbackRequest(filter=agg.AggregateFilter(project=project), chunk_size=1))
    cursor = chunks[0].cursor
    for other in (
        pb.ExportFeedbackRequest(filter=agg.AggregateFilter(project=project + "-x"), cursor=cursor),
        pb.ExportFeedbackRequest(filter=agg.AggregateFilter(project=project, keys=["thumbs"]), cursor=cursor),
        pb.ExportFeedbackRequest(filter=agg.AggregateFilter(project=project), only_with_comment=True, cursor=cursor),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await export(stub, other)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "another project or filter" in field_violations(caught.value)["cursor"]


@pytest.mark.parametrize("cursor", ["nonsense", "W10", "WzEsIngiLCJ5IiwxXQ"])
async def test_a_malformed_cursor_is_refused(stub: FeedbackServiceStub, project: str, cursor: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await export(stub, pb.ExportFeedbackRequest(filter=agg.AggregateFilter(project=project), cursor=cursor))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cursor" in field_violations(caught.value)


async def test_export_returns_the_current_revision_of_each_feedback(stub: FeedbackServiceStub, project: str) -> None:
    stored = (await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project)))).feedback
    change = feedback_pb2.Feedback(project=project, feedback_id=stored.feedback_id, comment="later")
    updated = (await stub.UpdateFeedback(pb.UpdateFeedbackRequest(feedback=change))).feedback
    chunks = await export(stub, pb.ExportFeedbackRequest(filter=agg.AggregateFilter(project=project)))
    assert [f for chunk in chunks for f in chunk.feedback] == [updated]


async def test_large_records_are_split_into_chunks_any_client_can_read(stub: FeedbackServiceStub, project: str) -> None:
    # 60 maximal corrections would make a 6 MB message, over gRPC's default 4 MiB receive limit.
    items = [thumbs_up(project, feedback_id=f"big-{i:02d}", correction="é" * 50_000) for i in range(60)]
    for start in range(0, 60, 20):  # the batch answers echo the records: keep each under 4 MiB too
        await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=items[start : start + 20]))
    chunks = await export(stub, pb.ExportFeedbackRequest(filter=agg.AggregateFilter(project=project)))
    assert len(chunks) > 1
    assert all(chunk.ByteSize() < 4 * 1024 * 1024 for chunk in chunks)
    assert ids(chunks) == [f"big-{i:02d}" for i in range(60)]
    resumed = await export(
        stub, pb.ExportFeedbackRequest(filter=agg.AggregateFilter(project=project), cursor=chunks[0].cursor)
    )
    assert ids(resumed) == ids(chunks)[len(chunks[0].feedback) :]
