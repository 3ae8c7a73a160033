"""UpdateFeedback (field masks, revisions) and DeleteFeedback, visible to the very next read."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from feedback_proto.v1 import feedback_pb2
from feedback_proto.v1 import feedback_service_pb2 as pb
from tests.helpers import field_violations, thumbs_up

if TYPE_CHECKING:  # the async stub class exists only in the .pyi stubs
    from feedback_proto.v1.feedback_service_pb2_grpc import FeedbackServiceAsyncStub as FeedbackServiceStub


async def _create(stub: FeedbackServiceStub, feedback: feedback_pb2.Feedback) -> feedback_pb2.Feedback:
    response: pb.CreateFeedbackResponse = await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=feedback))
    return response.feedback


async def _update(stub: FeedbackServiceStub, feedback: feedback_pb2.Feedback, *paths: str) -> feedback_pb2.Feedback:
    request = pb.UpdateFeedbackRequest(feedback=feedback, update_mask=FieldMask(paths=list(paths)))
    response: pb.UpdateFeedbackResponse = await stub.UpdateFeedback(request)
    return response.feedback


async def test_update_changes_masked_fields_and_bumps_revision(stub: FeedbackServiceStub, project: str) -> None:
    original = await _create(stub, thumbs_up(project, comment="first", metadata={"a": "1"}))
    change = feedback_pb2.Feedback(
        project=project, feedback_id=original.feedback_id, thumb=feedback_pb2.THUMB_DOWN, comment="ignored"
    )
    updated = await _update(stub, change, "thumb")
    assert updated.thumb == feedback_pb2.THUMB_DOWN
    assert updated.comment == "first"  # not in the mask
    assert updated.revision == 2
    assert updated.create_time == original.create_time
    assert updated.update_time.ToMicroseconds() > original.update_time.ToMicroseconds()
    fetched = await stub.GetFeedback(pb.GetFeedbackRequest(project=project, feedback_id=original.feedback_id))
    assert fetched.feedback == updated
    listed = await stub.ListFeedback(pb.ListFeedbackRequest(project=project))
    assert list(listed.feedback) == [updated]


async def test_an_empty_mask_updates_the_fields_the_request_sets(stub: FeedbackServiceStub, project: str) -> None:
    original = await _create(stub, thumbs_up(project, comment="first", metadata={"a": "1"}))
    change = feedback_pb2.Feedback(project=project, feedback_id=original.feedback_id, correction="the fix")
    updated = await _update(stub, change)
    assert (updated.correction, updated.comment, updated.thumb) == ("the fix", "first", feedback_pb2.THUMB_UP)
    assert dict(updated.metadata) == {"a": "1"}


async def test_wildcard_mask_replaces_every_mutable_field(stub: FeedbackServiceStub, project: str) -> None:
    original = await _create(stub, thumbs_up(project, comment="first", metadata={"a": "1"}))
    change = feedback_pb2.Feedback(project=project, feedback_id=original.feedback_id, score=0.5)
    updated = await _update(stub, change, "*")
    assert updated.WhichOneof("value") == "score"
    assert (updated.score, updated.comment, dict(updated.metadata)) == (0.5, "", {})
    assert updated.trace_id == original.trace_id


async def test_value_can_be_cleared_when_a_comment_remains(stub: FeedbackServiceStub, project: str) -> None:
    original = await _create(stub, thumbs_up(project, comment="keep me"))
    change = feedback_pb2.Feedback(project=project, feedback_id=original.feedback_id)
    updated = await _update(stub, change, "thumb")
    assert updated.WhichOneof("value") is None
    assert updated.comment == "keep me"


async def test_every_update_increments_the_revision(stub: FeedbackServiceStub, project: str) -> None:
    original = await _create(stub, thumbs_up(project))
    for expected in range(2, 7):
        change = feedback_pb2.Feedback(project=project, feedback_id=original.feedback_id, comment=f"r{expected}")
        assert (await _update(stub, change, "comment")).revision == expected
    fetched = await stub.GetFeedback(pb.GetFeedbackRequest(project=project, feedback_id=original.feedback_id))
    assert (fetched.feedback.revision, fetched.feedback.comment) == (6, "r6")


@pytest.mark.parametrize(
    ("paths", "fields", "field", "words"),
    [
        (["trace_id"], {}, "update_mask", "cannot update 'trace_id'"),
        (["model"], {}, "update_mask", "cannot update 'model'"),
        ([], {}, "update_mask", "nothing to update"),
        (["score"], {"score": float("nan")}, "feedback.score", "finite"),
        (["comment"], {"comment": "x" * 10_001}, "feedback.comment", "at most 10000"),
        (["thumb", "comment"], {}, "feedback.value", "at least one of"),
        (["metadata"], {"metadata": {"k" * 65: "v"}}, "feedback.metadata['" + "k" * 65 + "']", "1-64"),
    ],
)
async def test_bad_updates_are_refused_and_change_nothing(
    stub: FeedbackServiceStub, project: str, paths: list[str], fields: dict[str, object], field: str, words: str
) -> None:
    original = await _create(stub, thumbs_up(project))
    change = feedback_pb2.Feedback(project=project, feedback_id=original.feedback_id, **fields)  # type: ignore[arg-type]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _update(stub, change, *paths)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in field_violations(caught.value)[field]
    fetched = await stub.GetFeedback(pb.GetFeedbackRequest(project=project, feedback_id=original.feedback_id))
    assert fetched.feedback == original


async def test_update_of_a_missing_feedback_is_not_found(stub: FeedbackServiceStub, project: str) -> None:
    change = feedback_pb2.Feedback(project=project, feedback_id="missing", comment="x")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _update(stub, change, "comment")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_update_needs_project_and_feedback_id(stub: FeedbackServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _update(stub, feedback_pb2.Feedback(comment="x"), "comment")
    assert set(field_violations(caught.value)) == {"feedback.project", "feedback.feedback_id"}


async def test_delete_is_visible_to_the_next_read(stub: FeedbackServiceStub, project: str) -> None:
    keep = await _create(stub, thumbs_up(project))
    gone = await _create(stub, thumbs_up(project))
    await _update(stub, feedback_pb2.Feedback(project=project, feedback_id=gone.feedback_id, comment="x"), "comment")
    await stub.DeleteFeedback(pb.DeleteFeedbackRequest(project=project, feedback_id=gone.feedback_id))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetFeedback(pb.GetFeedbackRequest(project=project, feedback_id=gone.feedback_id))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await stub.ListFeedback(pb.ListFeedbackRequest(project=project))
    assert [f.feedback_id for f in listed.feedback] == [keep.feedback_id]


async def test_deleting_twice_or_updating_after_delete_is_not_found(stub: FeedbackServiceStub, project: str) -> None:
    gone = await _create(stub, thumbs_up(project))
    await stub.DeleteFeedback(pb.DeleteFeedbackRequest(project=project, feedback_id=gone.feedback_id))
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await stub.DeleteFeedback(pb.DeleteFeedbackRequest(project=project, feedback_id=gone.feedback_id))
    assert again.value.code() == grpc.StatusCode.NOT_FOUND
    change = feedback_pb2.Feedback(project=project, feedback_id=gone.feedback_id, comment="x")
    with pytest.raises(grpc.aio.AioRpcError) as update:
        await _update(stub, change, "comment")
    assert update.value.code() == grpc.StatusCode.NOT_FOUND
