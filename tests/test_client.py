"""The small Python client against the real server: calls, pagination, typed errors."""

from __future__ import annotations

import grpc
import pytest

from feedback_client import Feedback, FeedbackClient, FeedbackError, FieldViolation, Thumb
from feedback_proto.v1 import feedback_service_pb2 as pb
from tests.helpers import thumbs_up


async def test_client_creates_reads_updates_and_deletes(client: FeedbackClient, project: str) -> None:
    stored = await client.create(Feedback(project=project, trace_id="t1", key="thumbs", thumb=Thumb.THUMB_UP))
    assert await client.get(stored.feedback_id, project=project) == stored
    changed = await client.update(Feedback(project=project, feedback_id=stored.feedback_id, comment="why"), ["comment"])
    assert (changed.comment, changed.revision) == ("why", 2)
    await client.delete(stored.feedback_id, project=project)
    with pytest.raises(FeedbackError) as caught:
        await client.get(stored.feedback_id, project=project)
    assert caught.value.code == grpc.StatusCode.NOT_FOUND
    assert caught.value.reason == "FEEDBACK_NOT_FOUND"


async def test_client_errors_carry_field_violations(client: FeedbackClient, project: str) -> None:
    with pytest.raises(FeedbackError) as caught:
        await client.create(Feedback(project=project, key="thumbs", score=float("nan")))
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.reason == "INVALID_REQUEST"
    fields = {v.field for v in caught.value.field_violations}
    assert fields == {"feedback.trace_id", "feedback.score"}
    assert all(isinstance(v, FieldViolation) for v in caught.value.field_violations)


async def test_client_batch_returns_feedback_or_error_per_item(client: FeedbackClient, project: str) -> None:
    results = await client.batch_create([thumbs_up(project), thumbs_up(project, key="")])
    assert isinstance(results[0], Feedback)
    assert isinstance(results[1], FeedbackError)
    assert results[1].field_violations == (FieldViolation("feedback.key", "is required"),)


async def test_client_iterates_over_every_page(client: FeedbackClient, project: str) -> None:
    await client.batch_create([thumbs_up(project) for _ in range(250)])
    seen = [f.feedback_id async for f in client.iter_feedback(pb.ListFeedbackRequest(project=project, page_size=100))]
    assert len(seen) == len(set(seen)) == 250
