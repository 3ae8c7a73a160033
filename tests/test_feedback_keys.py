"""Feedback key schemas: defined, read, changed and archived; feedback for a key with a schema follows it."""

# The stubs come from fixtures and are untyped here: grpc.aio stubs are typed only in .pyi files.
# mypy: disable-error-code="no-untyped-def"
from __future__ import annotations

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from feedback_client import FeedbackError
from feedback_proto.v1 import feedback_keys_pb2 as keys_pb
from feedback_proto.v1 import feedback_keys_pb2_grpc, feedback_pb2
from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_service.domain.errors import InvalidArgumentError
from feedback_service.domain.keys.schemas import KeyKind, KeySchema, validate_schema
from tests.helpers import field_violations

SCORE_KEY = keys_pb.FeedbackKey(
    name="helpfulness",
    kind=keys_pb.FEEDBACK_KEY_KIND_SCORE,
    description="How much the answer helped, 1 to 5 stars",
    higher_is_better=True,
    score_min=1,
    score_max=5,
    score_step=1,
)
LABEL_KEY = keys_pb.FeedbackKey(
    name="topic", kind=keys_pb.FEEDBACK_KEY_KIND_LABEL, labels=["billing", "shipping", "other"]
)
TEXT_KEY = keys_pb.FeedbackKey(name="notes", kind=keys_pb.FEEDBACK_KEY_KIND_TEXT)
THUMBS_KEY = keys_pb.FeedbackKey(name="thumbs", kind=keys_pb.FEEDBACK_KEY_KIND_THUMBS, higher_is_better=True)


@pytest.fixture
def keys(channel: grpc.aio.Channel) -> feedback_keys_pb2_grpc.FeedbackKeyServiceStub:
    return feedback_keys_pb2_grpc.FeedbackKeyServiceStub(channel)


async def define(
    keys: feedback_keys_pb2_grpc.FeedbackKeyServiceStub, project: str, *keys_to_define: keys_pb.FeedbackKey
) -> None:
    for key in keys_to_define:
        message = keys_pb.FeedbackKey()
        message.CopyFrom(key)
        message.project = project
        await keys.CreateFeedbackKey(keys_pb.CreateFeedbackKeyRequest(feedback_key=message))


def error_reason(error: grpc.aio.AioRpcError) -> str:
    return FeedbackError.from_rpc_error(error).reason


def feedback(project: str, key: str, **fields: object) -> feedback_pb2.Feedback:
    return feedback_pb2.Feedback(project=project, trace_id="t1", key=key, **fields)  # type: ignore[arg-type]


async def test_a_key_is_created_read_listed_updated_and_archived(keys, project: str) -> None:
    await define(keys, project, SCORE_KEY, LABEL_KEY)
    got = (await keys.GetFeedbackKey(keys_pb.GetFeedbackKeyRequest(project=project, name="helpfulness"))).feedback_key
    assert (got.kind, got.score_min, got.score_max, got.score_step, got.higher_is_better) == (
        keys_pb.FEEDBACK_KEY_KIND_SCORE, 1, 5, 1, True,
    )  # fmt: skip
    assert got.create_time.seconds > 0
    changed = await keys.UpdateFeedbackKey(
        keys_pb.UpdateFeedbackKeyRequest(
            feedback_key=keys_pb.FeedbackKey(project=project, name="topic", labels=["billing", "refunds"]),
            update_mask=FieldMask(paths=["labels"]),
        )
    )
    assert list(changed.feedback_key.labels) == ["billing", "refunds"]
    await keys.ArchiveFeedbackKey(keys_pb.ArchiveFeedbackKeyRequest(project=project, name="topic"))
    listed = await keys.ListFeedbackKeys(keys_pb.ListFeedbackKeysRequest(project=project))
    assert [k.name for k in listed.feedback_keys] == ["helpfulness"]
    everything = await keys.ListFeedbackKeys(keys_pb.ListFeedbackKeysRequest(project=project, show_archived=True))
    assert [(k.name, k.archived) for k in everything.feedback_keys] == [("helpfulness", False), ("topic", True)]


async def test_a_taken_name_is_already_exists_and_an_unknown_one_not_found(keys, project: str) -> None:
    await define(keys, project, THUMBS_KEY)
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await define(keys, project, THUMBS_KEY)
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(taken.value) == "FEEDBACK_KEY_EXISTS"
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await keys.GetFeedbackKey(keys_pb.GetFeedbackKeyRequest(project=project, name="nope"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(missing.value) == "FEEDBACK_KEY_NOT_FOUND"


async def test_bad_definitions_name_each_broken_rule(keys, project: str) -> None:
    cases = [
        (keys_pb.FeedbackKey(name="Bad", kind=keys_pb.FEEDBACK_KEY_KIND_THUMBS), {"feedback_key.name"}),
        (keys_pb.FeedbackKey(name="k"), {"feedback_key.kind"}),
        (
            keys_pb.FeedbackKey(name="k", kind=keys_pb.FEEDBACK_KEY_KIND_SCORE, score_min=5, score_max=1),
            {"feedback_key.score_max"},
        ),
        (keys_pb.FeedbackKey(name="k", kind=keys_pb.FEEDBACK_KEY_KIND_LABEL), {"feedback_key.labels"}),
        (
            keys_pb.FeedbackKey(name="k", kind=keys_pb.FEEDBACK_KEY_KIND_LABEL, labels=["a", "a"]),
            {"feedback_key.labels"},
        ),
        (keys_pb.FeedbackKey(name="k", kind=keys_pb.FEEDBACK_KEY_KIND_THUMBS, labels=["a"]), {"feedback_key.labels"}),
    ]
    for definition, fields in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await define(keys, project, definition)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(list(field_violations(caught.value))) == fields, definition


def test_the_kind_of_a_key_cannot_change_by_update() -> None:
    with pytest.raises(InvalidArgumentError):
        validate_schema(KeySchema(project="p", name="k", kind=KeyKind.SCORE, score_min=0, score_max=0))


async def test_feedback_for_a_key_with_a_schema_follows_it(stub, keys, project: str) -> None:
    await define(keys, project, SCORE_KEY, LABEL_KEY, TEXT_KEY, THUMBS_KEY)
    refused = {
        "score out of range": (feedback(project, "helpfulness", score=7), "feedback.score", "outside the range"),
        "score off the grid": (feedback(project, "helpfulness", score=2.5), "feedback.score", "not on the grid"),
        "wrong kind": (feedback(project, "helpfulness", label="good"), "feedback.label", "takes a score value"),
        "unknown label": (feedback(project, "topic", label="weather"), "feedback.label", "is not a label"),
        "value on text key": (feedback(project, "notes", score=1), "feedback.score", "free text only"),
        "score on thumbs": (feedback(project, "thumbs", score=1), "feedback.score", "takes a thumb value"),
    }
    for name, (item, field, words) in refused.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=item))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert field in list(field_violations(caught.value)), name
        assert words in (caught.value.details() or ""), name
    accepted = [
        feedback(project, "helpfulness", score=4),
        feedback(project, "helpfulness", comment="no score, only words"),
        feedback(project, "topic", label="shipping"),
        feedback(project, "notes", comment="formal tone"),
        feedback(project, "thumbs", thumb=feedback_pb2.THUMB_UP),
        feedback(project, "free_form_key", score=123.4),  # no schema: anything valid goes
    ]
    results = await stub.BatchCreateFeedback(
        pb.BatchCreateFeedbackRequest(feedback=[*accepted, refused["wrong kind"][0]])
    )
    assert [r.WhichOneof("result") for r in results.results] == ["feedback"] * 6 + ["error"]
    assert results.results[6].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


async def test_updates_are_checked_against_the_schema(stub, keys, project: str) -> None:
    await define(keys, project, SCORE_KEY)
    stored = (
        await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=feedback(project, "helpfulness", score=3)))
    ).feedback
    change = feedback_pb2.Feedback(project=project, feedback_id=stored.feedback_id, score=9)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateFeedback(pb.UpdateFeedbackRequest(feedback=change, update_mask=FieldMask(paths=["score"])))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(field_violations(caught.value)) == ["feedback.score"]
    unchanged = await stub.GetFeedback(pb.GetFeedbackRequest(project=project, feedback_id=stored.feedback_id))
    assert (unchanged.feedback.score, unchanged.feedback.revision) == (3, 1)


async def test_an_archived_key_takes_no_new_feedback(stub, keys, project: str) -> None:
    await define(keys, project, THUMBS_KEY)
    await stub.CreateFeedback(
        pb.CreateFeedbackRequest(feedback=feedback(project, "thumbs", thumb=feedback_pb2.THUMB_UP))
    )
    await keys.ArchiveFeedbackKey(keys_pb.ArchiveFeedbackKeyRequest(project=project, name="thumbs"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateFeedback(
            pb.CreateFeedbackRequest(feedback=feedback(project, "thumbs", thumb=feedback_pb2.THUMB_UP))
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(caught.value) == "FEEDBACK_KEY_ARCHIVED"
    listed = await stub.ListFeedback(pb.ListFeedbackRequest(project=project))
    assert len(listed.feedback) == 1  # stored feedback stays


async def test_a_schema_change_applies_to_the_next_write(stub, keys, project: str) -> None:
    await define(keys, project, SCORE_KEY)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=feedback(project, "helpfulness", score=10)))
    await keys.UpdateFeedbackKey(
        keys_pb.UpdateFeedbackKeyRequest(
            feedback_key=keys_pb.FeedbackKey(project=project, name="helpfulness", score_max=10),
            update_mask=FieldMask(paths=["score_max"]),
        )
    )
    stored = await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=feedback(project, "helpfulness", score=10)))
    assert stored.feedback.score == 10
