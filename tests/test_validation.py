"""Every validation rule: INVALID_ARGUMENT with a BadRequest violation naming the field; nothing written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc
import pytest

from feedback_proto.v1 import feedback_pb2
from feedback_proto.v1 import feedback_service_pb2 as pb
from tests.helpers import field_violations, thumbs_up

if TYPE_CHECKING:  # the async stub class exists only in the .pyi stubs
    from feedback_proto.v1.feedback_service_pb2_grpc import FeedbackServiceAsyncStub as FeedbackServiceStub

# (what is wrong, fields to set on a valid thumbs-up, violated field, words in its description)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("empty project", {"project": ""}, "feedback.project", "is required"),
    ("upper-case project", {"project": "Acme"}, "feedback.project", "lower-case"),
    ("project too long", {"project": "p" * 65}, "feedback.project", "1-64"),
    ("feedback_id with a space", {"feedback_id": "a b"}, "feedback.feedback_id", "printable ASCII"),
    ("feedback_id too long", {"feedback_id": "f" * 129}, "feedback.feedback_id", "1-128"),
    ("no trace_id", {"trace_id": ""}, "feedback.trace_id", "is required"),
    ("trace_id too long", {"trace_id": "t" * 129}, "feedback.trace_id", "at most 128"),
    ("zero OpenTelemetry trace_id", {"trace_id": "0" * 32}, "feedback.trace_id", "all-zero"),
    ("trace_id with a newline", {"trace_id": "abc\ndef"}, "feedback.trace_id", "control characters"),
    ("span_id too long", {"span_id": "s" * 129}, "feedback.span_id", "at most 128"),
    ("session_id too long", {"session_id": "s" * 129}, "feedback.session_id", "at most 128"),
    ("model too long", {"model": "m" * 257}, "feedback.model", "at most 256"),
    ("model_version too long", {"model_version": "v" * 129}, "feedback.model_version", "at most 128"),
    ("no key", {"key": ""}, "feedback.key", "is required"),
    ("upper-case key", {"key": "Thumbs"}, "feedback.key", "lower-case identifier"),
    ("key with a dash", {"key": "thumbs-up"}, "feedback.key", "lower-case identifier"),
    ("key too long", {"key": "k" * 65}, "feedback.key", "at most 64"),
    ("unspecified thumb", {"thumb": feedback_pb2.THUMB_UNSPECIFIED}, "feedback.thumb", "THUMB_UP or THUMB_DOWN"),
    ("unknown thumb", {"thumb": 7}, "feedback.thumb", "THUMB_UP or THUMB_DOWN"),
    ("NaN score", {"score": float("nan")}, "feedback.score", "finite"),
    ("infinite score", {"score": float("inf")}, "feedback.score", "finite"),
    ("negative infinite score", {"score": float("-inf")}, "feedback.score", "finite"),
    ("empty label", {"label": ""}, "feedback.label", "must not be empty"),
    ("label too long", {"label": "l" * 257}, "feedback.label", "at most 256"),
    ("comment too long", {"comment": "c" * 10_001}, "feedback.comment", "at most 10000"),
    ("correction too long", {"correction": "c" * 100_001}, "feedback.correction", "at most 100000"),
    ("unknown source", {"source": 9}, "feedback.source", "unknown source"),
    ("author too long", {"author": "a" * 257}, "feedback.author", "at most 256"),
    ("too many metadata entries", {"metadata": {f"k{i}": "v" for i in range(65)}}, "feedback.metadata", "64"),
    ("metadata key too long", {"metadata": {"k" * 65: "v"}}, "feedback.metadata['" + "k" * 65 + "']", "1-64"),
    ("empty metadata key", {"metadata": {"": "v"}}, "feedback.metadata['']", "1-64"),
    ("metadata value over 1 KiB", {"metadata": {"k": "é" * 513}}, "feedback.metadata['k']", "1024 bytes"),
]


@pytest.mark.parametrize(("fields", "field", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_invalid_feedback_is_refused_with_a_field_violation(
    stub: FeedbackServiceStub, project: str, fields: dict[str, Any], field: str, words: str
) -> None:
    fields = {"project": project, **fields}
    feedback = thumbs_up(**fields)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=feedback))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(caught.value)
    assert field in violations, violations
    assert words in violations[field]
    if fields["project"] == project:
        listed = await stub.ListFeedback(pb.ListFeedbackRequest(project=project))
        assert list(listed.feedback) == []


async def test_feedback_without_value_comment_or_correction_is_refused(stub: FeedbackServiceStub, project: str) -> None:
    empty = feedback_pb2.Feedback(project=project, trace_id="t", key="thumbs")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=empty))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at least one of" in field_violations(caught.value)["feedback.value"]


async def test_every_bad_field_is_reported_at_once(stub: FeedbackServiceStub) -> None:
    bad = feedback_pb2.Feedback(project="Bad Project", key="Bad Key", score=float("nan"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=bad))
    assert set(field_violations(caught.value)) == {
        "feedback.project",
        "feedback.trace_id",
        "feedback.key",
        "feedback.score",
    }


async def test_limits_are_inclusive(stub: FeedbackServiceStub, project: str) -> None:
    at_limits = thumbs_up(
        project,
        feedback_id="f" * 128,
        trace_id="t" * 128,
        key="k" * 64,
        label="l" * 256,
        comment="c" * 10_000,
        correction="ç" * 100_000,
        author="a" * 256,
        metadata={**{f"k{i}": "v" for i in range(63)}, "k" * 64: "é" * 512},
    )
    stored = (await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=at_limits))).feedback
    assert stored.correction == at_limits.correction
    assert dict(stored.metadata) == dict(at_limits.metadata)


async def test_score_extremes_that_are_finite_are_accepted(stub: FeedbackServiceStub, project: str) -> None:
    for score in (1.7976931348623157e308, -0.0, 5e-324):
        stored = (
            await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project, score=score)))
        ).feedback
        assert stored.score == score
