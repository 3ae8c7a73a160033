"""The blocking client, the conveniences and builders, and OpenTelemetry defaults, against the real server."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from feedback_client import (
    FeedbackClient,
    FeedbackError,
    FieldViolation,
    Source,
    SyncFeedbackClient,
    Thumb,
    comment,
    correct,
    label,
    score,
    thumbs_down,
    thumbs_up,
)
from feedback_proto.v1 import aggregates_pb2
from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_service.server import FeedbackServer
from tests.support.auth import ADMIN_KEY

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7


def test_builders_set_the_value_key_and_context() -> None:
    assert thumbs_up("t").thumb == Thumb.THUMB_UP
    down = thumbs_down("t", model="bot", model_version="v2", author="u1", metadata={"app": "web"})
    assert (down.thumb, down.key, down.source, down.model, down.model_version) == (
        Thumb.THUMB_DOWN, "thumbs", Source.SOURCE_USER, "bot", "v2",
    )  # fmt: skip
    assert dict(down.metadata) == {"app": "web"}
    assert thumbs_up("t", source=Source.SOURCE_REVIEWER).source == Source.SOURCE_REVIEWER
    assert (score("t", key="helpfulness", value=4.5).score, score("t", key="h", value=1).key) == (4.5, "h")
    assert label("t", key="topic", value="billing").WhichOneof("value") == "label"
    assert (comment("t", text="too long").comment, comment("t", text="x").WhichOneof("value")) == ("too long", None)
    fixed = correct("t", correction="30 days", comment="policy changed")
    assert (fixed.correction, fixed.comment, fixed.key) == ("30 days", "policy changed", "correction")


def test_trace_and_span_ids_default_to_the_current_opentelemetry_span() -> None:
    context = SpanContext(trace_id=TRACE_ID, span_id=SPAN_ID, is_remote=False, trace_flags=TraceFlags(1))
    with trace.use_span(NonRecordingSpan(context)):
        inside = thumbs_up()
        explicit = thumbs_up("other-trace")
        own_span = score(key="k", value=1, span_id="")
    assert (inside.trace_id, inside.span_id) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert (explicit.trace_id, explicit.span_id) == ("other-trace", "")
    assert (own_span.trace_id, own_span.span_id) == ("4bf92f3577b34da6a3ce929d0e0e4736", "")


def test_without_a_trace_id_or_a_span_the_builder_says_what_is_missing() -> None:
    with pytest.raises(ValueError, match="trace_id is required"):
        thumbs_up()


async def test_conveniences_store_each_kind(client: FeedbackClient, project: str) -> None:
    stored = [
        await client.thumbs_up("t1", project=project),
        await client.thumbs_down("t1", project=project, author="u2"),
        await client.score("t1", key="helpfulness", value=3, project=project),
        await client.label("t1", key="topic", value="billing", project=project),
        await client.comment("t1", text="slow", project=project),
        await client.correct("t1", correction="The answer is 42.", project=project),
    ]
    assert all(f.revision == 1 and f.feedback_id for f in stored)
    listed = {
        f.feedback_id: f for f in [f async for f in client.iter_feedback(pb.ListFeedbackRequest(project=project))]
    }
    assert {listed[f.feedback_id].key for f in stored} == {"thumbs", "helpfulness", "topic", "comment", "correction"}
    assert listed[stored[5].feedback_id].correction == "The answer is 42."


async def test_a_create_retried_with_its_client_side_id_stores_one_copy(client: FeedbackClient, project: str) -> None:
    feedback = thumbs_up("t1", project=project, feedback_id="fixed-id-1")
    first = await client.create(feedback)
    again = await client.create(feedback)
    assert first == again
    assert [f.feedback_id async for f in client.iter_feedback(pb.ListFeedbackRequest(project=project))] == [
        "fixed-id-1"
    ]


async def test_batch_errors_carry_field_violations(client: FeedbackClient, project: str) -> None:
    results = await client.batch_create(
        [thumbs_up("t1", project=project), score("t1", key="h", value=float("nan"), project=project)]
    )
    assert not isinstance(results[0], FeedbackError)
    error = results[1]
    assert isinstance(error, FeedbackError)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.field_violations == (
        FieldViolation("feedback.score", "must be a finite number (not NaN or infinite)"),
    )


def _sync_session(target: str, project: str) -> dict[str, object]:
    """Everything a script without an event loop does, in one blocking session."""
    with SyncFeedbackClient(target, api_key=ADMIN_KEY, project=project) as client:
        up = client.thumbs_up("t1", model="bot", model_version="v1")
        client.score("t2", key="helpfulness", value=5, model="bot", model_version="v1")
        logged = client.log(thumbs_down("t3", model="bot", model_version="v1"))
        assert client.flush(timeout_s=10)
        fetched = client.get(up.feedback_id)
        listed = sorted(f.trace_id for f in client.iter_feedback())
        request = pb.StreamAggregatesRequest(
            filter=aggregates_pb2.AggregateFilter(keys=["thumbs"]), group_by=[aggregates_pb2.GROUP_BY_FIELD_KEY]
        )
        snapshot = []
        for message in client.stream_aggregates(request):
            if message.HasField("snapshot_complete"):
                break
            snapshot.append((message.group.key.key, message.group.stats.count))
        exported = [f.feedback_id for chunk in client.export(pb.ExportFeedbackRequest()) for f in chunk.feedback]
        try:
            client.score("t4", key="Bad", value=1)
        except FeedbackError as error:
            refused = (error.code, [v.field for v in error.field_violations])
        client.delete(up.feedback_id)
        remaining = len(list(client.iter_feedback()))
    return {
        "fetched": fetched == up,
        "logged": logged,
        "listed": listed,
        "snapshot": snapshot,
        "exported": len(exported),
        "refused": refused,
        "remaining": remaining,
    }


async def test_the_sync_client_does_what_the_async_one_does(server: FeedbackServer, project: str) -> None:
    # In a worker thread: the sync client blocks, and this event loop must keep serving the server.
    result = await asyncio.to_thread(_sync_session, f"127.0.0.1:{server.port}", project)
    assert result["fetched"] is True
    assert isinstance(result["logged"], str)
    assert result["listed"] == ["t1", "t2", "t3"]
    assert result["snapshot"] == [("thumbs", 2)]
    assert result["exported"] == 3
    assert result["refused"] == (grpc.StatusCode.INVALID_ARGUMENT, ["feedback.key"])
    assert result["remaining"] == 2


def test_credentials_are_one_or_the_other() -> None:
    with pytest.raises(ValueError, match="either api_key or feedback_token"):
        SyncFeedbackClient("127.0.0.1:1", api_key="fbk_x", feedback_token="fbt1.x.y")
