"""CreateFeedback: what is stored, what comes back, and idempotency by feedback_id."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import grpc
import pytest

from feedback_proto.v1 import feedback_pb2
from feedback_proto.v1 import feedback_service_pb2 as pb
from tests.helpers import thumbs_up

if TYPE_CHECKING:  # the async stub class exists only in the .pyi stubs
    from feedback_proto.v1.feedback_service_pb2_grpc import FeedbackServiceAsyncStub as FeedbackServiceStub


async def create(stub: FeedbackServiceStub, feedback: feedback_pb2.Feedback) -> feedback_pb2.Feedback:
    response: pb.CreateFeedbackResponse = await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=feedback))
    return response.feedback


async def count(stub: FeedbackServiceStub, project: str) -> int:
    page = await stub.ListFeedback(pb.ListFeedbackRequest(project=project, page_size=1000))
    return len(page.feedback)


async def test_create_returns_the_stored_record_with_server_fields(stub: FeedbackServiceStub, project: str) -> None:
    sent = feedback_pb2.Feedback(
        project=project,
        trace_id="4BF92F3577B34DA6A3CE929D0E0E4736",
        span_id="00F067AA0BA902B7",
        session_id="chat-42",
        model="support-bot",
        model_version="v7",
        key="helpfulness",
        score=0.75,
        comment="mostly right",
        correction="The refund window is 30 days.",
        source=feedback_pb2.SOURCE_REVIEWER,
        author="reviewer-1",
        metadata={"app": "web", "lang": "de"},
    )
    stored = await create(stub, sent)
    uuid.UUID(stored.feedback_id)  # generated when empty
    assert stored.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert stored.span_id == "00f067aa0ba902b7"
    assert stored.revision == 1
    assert stored.create_time == stored.update_time
    assert stored.create_time.seconds > 0
    expected = feedback_pb2.Feedback()
    expected.CopyFrom(sent)
    expected.feedback_id = stored.feedback_id
    expected.trace_id, expected.span_id = stored.trace_id, stored.span_id
    expected.create_time.CopyFrom(stored.create_time)
    expected.update_time.CopyFrom(stored.update_time)
    expected.revision = 1
    expected.created_by = expected.updated_by = "bootstrap-admin"  # audit: the test channel's key
    assert stored == expected
    fetched = await stub.GetFeedback(pb.GetFeedbackRequest(project=project, feedback_id=stored.feedback_id))
    assert fetched.feedback == stored


@pytest.mark.parametrize(
    "value",
    [
        {"thumb": feedback_pb2.THUMB_DOWN},
        {"score": -3.5},
        {"label": "off_topic"},
        {"comment": "only a comment"},
        {"correction": "only a correction"},
    ],
)
async def test_each_kind_of_feedback_round_trips(
    stub: FeedbackServiceStub, project: str, value: dict[str, object]
) -> None:
    sent = feedback_pb2.Feedback(project=project, trace_id="t-1", key="quality", **value)  # type: ignore[arg-type]
    stored = await create(stub, sent)
    fetched = (await stub.GetFeedback(pb.GetFeedbackRequest(project=project, feedback_id=stored.feedback_id))).feedback
    assert fetched.WhichOneof("value") == sent.WhichOneof("value")
    assert (fetched.thumb, fetched.score, fetched.label) == (sent.thumb, sent.score, sent.label)
    assert (fetched.comment, fetched.correction) == (sent.comment, sent.correction)


async def test_feedback_without_model_is_accepted(stub: FeedbackServiceStub, project: str) -> None:
    stored = await create(stub, thumbs_up(project))
    assert (stored.model, stored.model_version) == ("", "")


async def test_output_only_fields_sent_by_a_client_are_ignored(stub: FeedbackServiceStub, project: str) -> None:
    sent = thumbs_up(project, revision=99)
    sent.create_time.FromSeconds(1)
    stored = await create(stub, sent)
    assert stored.revision == 1
    assert stored.create_time.seconds > 1_700_000_000


async def test_sql_looking_strings_are_stored_and_returned_verbatim(stub: FeedbackServiceStub, project: str) -> None:
    nasty = "'; DROP TABLE feedback; --"
    sent = thumbs_up(
        project,
        feedback_id="x');DROP/**/TABLE/**/feedback;--",
        trace_id=nasty,
        model=nasty,
        comment=nasty + " \\' \" {project:String} \x00 ünïcødé 🚀",
        author="\\",
        metadata={nasty: nasty},
    )
    stored = await create(stub, sent)
    fetched = (await stub.GetFeedback(pb.GetFeedbackRequest(project=project, feedback_id=sent.feedback_id))).feedback
    assert fetched == stored
    assert (fetched.trace_id, fetched.model, fetched.comment) == (sent.trace_id, sent.model, sent.comment)
    assert dict(fetched.metadata) == {nasty: nasty}
    listed = await stub.ListFeedback(pb.ListFeedbackRequest(project=project, model=nasty, trace_id=nasty))
    assert [f.feedback_id for f in listed.feedback] == [sent.feedback_id]


async def test_retry_with_same_id_and_payload_returns_the_first_record(stub: FeedbackServiceStub, project: str) -> None:
    sent = thumbs_up(project, feedback_id="retry-1")
    first = await create(stub, sent)
    second = await create(stub, sent)
    assert second == first
    assert await count(stub, project) == 1


async def test_a_retry_with_the_server_generated_id_is_recognised_like_a_client_id(
    stub: FeedbackServiceStub, project: str
) -> None:
    sent = thumbs_up(project, span_id="3D7956834B2AB90C", metadata={"page": "/help"})
    first = await create(stub, sent)
    sent.feedback_id = first.feedback_id  # the client learnt the id, then re-sends the same feedback
    assert await create(stub, sent) == first
    sent.thumb = feedback_pb2.THUMB_DOWN
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(stub, sent)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert first.feedback_id in (caught.value.details() or "")
    assert await count(stub, project) == 1


async def test_different_payload_under_an_existing_id_is_already_exists(
    stub: FeedbackServiceStub, project: str
) -> None:
    await create(stub, thumbs_up(project, feedback_id="taken"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(stub, thumbs_up(project, feedback_id="taken", thumb=feedback_pb2.THUMB_DOWN))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "taken" in (caught.value.details() or "")
    assert await count(stub, project) == 1


async def test_same_id_in_another_project_is_independent(stub: FeedbackServiceStub, project: str) -> None:
    other = project + "-b"
    a = await create(stub, thumbs_up(project, feedback_id="shared"))
    b = await create(stub, thumbs_up(other, feedback_id="shared", thumb=feedback_pb2.THUMB_DOWN))
    assert (a.thumb, b.thumb) == (feedback_pb2.THUMB_UP, feedback_pb2.THUMB_DOWN)


async def test_same_id_sent_ten_times_concurrently_makes_one_row(stub: FeedbackServiceStub, project: str) -> None:
    sent = thumbs_up(project, feedback_id="burst")
    results = await asyncio.gather(*(create(stub, sent) for _ in range(10)))
    assert all(result == results[0] for result in results)
    assert await count(stub, project) == 1


async def test_retry_after_an_update_returns_the_current_record(stub: FeedbackServiceStub, project: str) -> None:
    sent = thumbs_up(project, feedback_id="then-updated")
    await create(stub, sent)
    changed = feedback_pb2.Feedback(project=project, feedback_id="then-updated", comment="on second thought")
    updated = (await stub.UpdateFeedback(pb.UpdateFeedbackRequest(feedback=changed))).feedback
    assert await create(stub, sent) == updated


async def test_a_deleted_id_cannot_be_created_again(stub: FeedbackServiceStub, project: str) -> None:
    sent = thumbs_up(project, feedback_id="gone")
    await create(stub, sent)
    await stub.DeleteFeedback(pb.DeleteFeedbackRequest(project=project, feedback_id="gone"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(stub, sent)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "deleted" in (caught.value.details() or "")
    assert await count(stub, project) == 0
