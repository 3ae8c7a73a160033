"""BatchCreateFeedback: per-item results, limits, and the micro-batcher coalescing single creates."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2

from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_service.server import FeedbackServer
from tests.helpers import field_violations, thumbs_up

if TYPE_CHECKING:  # the async stub class exists only in the .pyi stubs
    from feedback_proto.v1.feedback_service_pb2_grpc import FeedbackServiceAsyncStub as FeedbackServiceStub


async def test_one_bad_item_does_not_sink_the_batch(stub: FeedbackServiceStub, project: str) -> None:
    items = [thumbs_up(project, feedback_id=f"item-{i}") for i in range(5)]
    items[2].score = float("nan")
    response = await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=items))
    assert [r.WhichOneof("result") for r in response.results] == ["feedback"] * 2 + ["error"] + ["feedback"] * 2
    error = response.results[2].error
    assert error.code == code_pb2.INVALID_ARGUMENT
    bad_request = error_details_pb2.BadRequest()
    assert any(detail.Unpack(bad_request) for detail in error.details)
    assert [v.field for v in bad_request.field_violations] == ["feedback.score"]
    assert [r.feedback.feedback_id for i, r in enumerate(response.results) if i != 2] == [
        "item-0",
        "item-1",
        "item-3",
        "item-4",
    ]
    listed = await stub.ListFeedback(pb.ListFeedbackRequest(project=project))
    assert sorted(f.feedback_id for f in listed.feedback) == ["item-0", "item-1", "item-3", "item-4"]


async def test_batch_reports_retries_and_conflicts_per_item(stub: FeedbackServiceStub, project: str) -> None:
    await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project, feedback_id="old", trace_id="t")))
    items = [
        thumbs_up(project, feedback_id="old", trace_id="t"),  # retry of a stored create
        thumbs_up(project, feedback_id="old", trace_id="other"),  # conflict with it
        thumbs_up(project, feedback_id="new", trace_id="t"),
        thumbs_up(project, feedback_id="new", trace_id="t"),  # retry within the batch
        thumbs_up(project, feedback_id="new", trace_id="x"),  # conflict within the batch
    ]
    response = await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=items))
    kinds = [r.error.code if r.WhichOneof("result") == "error" else "ok" for r in response.results]
    assert kinds == ["ok", code_pb2.ALREADY_EXISTS, "ok", "ok", code_pb2.ALREADY_EXISTS]
    assert response.results[3].feedback == response.results[2].feedback
    listed = await stub.ListFeedback(pb.ListFeedbackRequest(project=project))
    assert sorted(f.feedback_id for f in listed.feedback) == ["new", "old"]


async def test_a_batch_of_1000_is_stored(stub: FeedbackServiceStub, project: str) -> None:
    items = [thumbs_up(project, score=float(i)) for i in range(1000)]
    response = await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=items))
    assert all(r.WhichOneof("result") == "feedback" for r in response.results)
    listed = await stub.ListFeedback(pb.ListFeedbackRequest(project=project, page_size=1000))
    assert sorted(f.score for f in listed.feedback) == [float(i) for i in range(1000)]


@pytest.mark.parametrize("size", [0, 1001])
async def test_batch_size_outside_1_to_1000_is_refused(stub: FeedbackServiceStub, project: str, size: int) -> None:
    items = [thumbs_up(project) for _ in range(size)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=items))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "feedback" in field_violations(caught.value)
    listed = await stub.ListFeedback(pb.ListFeedbackRequest(project=project))
    assert list(listed.feedback) == []


async def test_concurrent_creates_are_coalesced_into_few_inserts(
    stub: FeedbackServiceStub, server: FeedbackServer, project: str
) -> None:
    flushes_before = server.store.batcher.flushes
    await asyncio.gather(
        *(stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project))) for _ in range(200))
    )
    flushes = server.store.batcher.flushes - flushes_before
    assert 1 <= flushes <= 50, f"200 concurrent creates took {flushes} inserts"
    listed = await stub.ListFeedback(pb.ListFeedbackRequest(project=project, page_size=1000))
    assert len(listed.feedback) == 200


async def test_a_request_over_32_mib_is_invalid_argument_and_writes_nothing(
    stub: FeedbackServiceStub, project: str
) -> None:
    items = [thumbs_up(project, correction="c" * 100_000) for _ in range(340)]  # ~34 MB
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=items))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "split the batch" in field_violations(caught.value)["request"]
    listed = await stub.ListFeedback(pb.ListFeedbackRequest(project=project))
    assert list(listed.feedback) == []
