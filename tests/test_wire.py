"""Fuzzing every RPC: whatever bytes or field values arrive (over 10,000 generated requests in all), no
answer is INTERNAL or UNKNOWN, nothing invalid is stored and the server stays healthy."""

from __future__ import annotations

import math
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedback_proto.v1 import aggregates_pb2, api_keys_pb2, feedback_pb2
from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_service.domain.model import FeedbackInput, ValueKind
from feedback_service.domain.validation import validate_new_feedback
from feedback_service.server import FeedbackServer
from tests.helpers import field_violations

FUZZ_PROJECT = "fuzz"
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
# Every RPC (unary and streaming) with its request type.
RPCS: dict[str, tuple[type[Message], bool]] = {
    "/feedback.v1.FeedbackService/CreateFeedback": (pb.CreateFeedbackRequest, False),
    "/feedback.v1.FeedbackService/BatchCreateFeedback": (pb.BatchCreateFeedbackRequest, False),
    "/feedback.v1.FeedbackService/GetFeedback": (pb.GetFeedbackRequest, False),
    "/feedback.v1.FeedbackService/ListFeedback": (pb.ListFeedbackRequest, False),
    "/feedback.v1.FeedbackService/UpdateFeedback": (pb.UpdateFeedbackRequest, False),
    "/feedback.v1.FeedbackService/DeleteFeedback": (pb.DeleteFeedbackRequest, False),
    "/feedback.v1.FeedbackService/StreamAggregates": (pb.StreamAggregatesRequest, True),
    "/feedback.v1.FeedbackService/ExportFeedback": (pb.ExportFeedbackRequest, True),
    "/feedback.v1.FeedbackService/CompareVersions": (pb.CompareVersionsRequest, False),
    "/feedback.v1.FeedbackService/MintFeedbackToken": (pb.MintFeedbackTokenRequest, False),
    "/feedback.v1.ApiKeyService/CreateApiKey": (api_keys_pb2.CreateApiKeyRequest, False),
    "/feedback.v1.ApiKeyService/ListApiKeys": (api_keys_pb2.ListApiKeysRequest, False),
    "/feedback.v1.ApiKeyService/RevokeApiKey": (api_keys_pb2.RevokeApiKeyRequest, False),
}
assert aggregates_pb2  # the filters are nested in the requests above


def _fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))


async def _call(channel: grpc.aio.Channel, method: str, payload: bytes) -> grpc.StatusCode:
    """Send raw bytes; a stream is read to its end (never follows: follow is cleared by callers)."""
    streaming = RPCS[method][1]
    try:
        if streaming:
            async for _ in channel.unary_stream(method)(payload, timeout=10):
                pass
        else:
            await channel.unary_unary(method)(payload, timeout=10)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", FUZZ_PROJECT, "thumbs", "'; DROP TABLE feedback; --", "a" * 300, "0" * 32, "x" * 130]),
)
_INTS = {
    FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_ENUM: st.integers(-3, 12),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=True, allow_infinity=True),
}


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        nested = field.message_type
        assert nested is not None
        return _message(nested, depth + 1)
    if field.type == FieldDescriptor.TYPE_STRING:
        return _text
    return _INTS.get(field.type, st.just(None))


@st.composite
def _filled(draw: st.DrawFn, descriptor: Descriptor, depth: int) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for field in descriptor.fields:
        if depth > 3 or not draw(st.booleans()):
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            fields[field.name] = draw(st.dictionaries(_value(key, depth), _value(value, depth), max_size=3))
        elif field.is_repeated:
            fields[field.name] = draw(st.lists(_value(field, depth), max_size=3))
        else:
            fields[field.name] = draw(_value(field, depth))
    return fields


def _message(descriptor: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    return _filled(descriptor, depth).map(lambda fields: _build(descriptor, fields))


def _build(descriptor: Descriptor, fields: dict[str, Any]) -> Any:
    message_class = _CLASSES[descriptor.full_name]
    message = message_class()
    for name, value in fields.items():
        field = descriptor.fields_by_name[name]
        try:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                target = getattr(message, name)
                for key, item in value.items():
                    if field.message_type.fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE:
                        target[key].CopyFrom(item)
                    else:
                        target[key] = item
            elif field.is_repeated:
                getattr(message, name).extend(value)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                getattr(message, name).CopyFrom(value)
            else:
                setattr(message, name, value)
        except (ValueError, TypeError):
            pass  # values protobuf itself refuses to hold (e.g. lone surrogates) are simply not sent
    return message


def _all_classes() -> dict[str, Any]:
    classes: dict[str, Any] = {}
    pending: list[Any] = [request for request, _ in RPCS.values()]
    while pending:
        message_class = pending.pop()
        descriptor = message_class.DESCRIPTOR
        if descriptor.full_name in classes:
            continue
        classes[descriptor.full_name] = message_class
        for field in descriptor.fields:
            if field.message_type is not None:
                instance = message_class()
                nested = getattr(instance, field.name)
                if field.is_repeated and not field.message_type.GetOptions().map_entry:
                    nested = nested.add()
                elif field.message_type.GetOptions().map_entry:
                    continue
                pending.append(type(nested))
    return classes


_CLASSES = _all_classes()


@pytest.mark.parametrize("method", [m for m in RPCS if "FeedbackService/" in m and not RPCS[m][1]][:6])
async def test_bytes_that_are_not_a_message_are_invalid_argument(channel: grpc.aio.Channel, method: str) -> None:
    bad_utf8_project = b"\x0a\x02\xff\xfe" if method.endswith("GetFeedback") else b"\x0a\x04\x12\x02\xff\xfe"
    for payload in (b"\xff\xff\xff\xff", b"\x0a\x05\x01", bad_utf8_project):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(method)(payload, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "request" in field_violations(caught.value)


@_fuzz(2_500)
@given(method=st.sampled_from(sorted(RPCS)), payload=st.binary(max_size=300))
async def test_random_bytes_never_yield_internal_or_unknown(
    channel: grpc.aio.Channel, method: str, payload: bytes
) -> None:
    assert await _call(channel, method, payload) not in NEVER


@_fuzz(6_000)
@given(data=st.data(), method=st.sampled_from(sorted(RPCS)))
async def test_random_requests_of_every_rpc_never_yield_internal_or_unknown(
    channel: grpc.aio.Channel, data: st.DataObject, method: str
) -> None:
    request = data.draw(_message(RPCS[method][0].DESCRIPTOR))
    if hasattr(request, "follow"):
        request.follow = False  # a following stream never ends by itself
    assert await _call(channel, method, request.SerializeToString()) not in NEVER


def _mostly(valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid three times in four, so that plenty of fuzzed feedback is stored and can be checked."""
    return st.one_of(valid, valid, valid, invalid)


_word = st.text(alphabet="abcdefghij0123456789_", min_size=1, max_size=20)
_feedback = st.builds(
    feedback_pb2.Feedback,
    feedback_id=_mostly(st.just("") | _word, _text),
    project=_mostly(st.just(FUZZ_PROJECT), st.sampled_from(["", "Fuzz", "fu zz"])),
    trace_id=_mostly(_word, _text),
    span_id=_mostly(st.just(""), _text),
    model=_mostly(_word, _text),
    key=_mostly(st.just("thumbs"), st.sampled_from(["", "Bad", "k" * 70])),
    comment=_text,
    source=_mostly(st.integers(min_value=0, max_value=3), st.integers(min_value=-3, max_value=7)),
    author=_mostly(_word, _text),
    metadata=_mostly(st.dictionaries(_word, _word, max_size=3), st.dictionaries(_text, _text, max_size=3)),
)
_value_choice = st.one_of(
    st.none(),
    _mostly(st.integers(min_value=1, max_value=2), st.integers(min_value=-2, max_value=5)).map(lambda n: ("thumb", n)),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda x: ("score", x)),
    _text.map(lambda s: ("label", s)),
)


@_fuzz(2_000)
@given(feedback=_feedback, value=_value_choice)
async def test_random_feedback_is_stored_valid_or_refused_cleanly(
    channel: grpc.aio.Channel, feedback: feedback_pb2.Feedback, value: tuple[str, Any] | None
) -> None:
    if value is not None:
        setattr(feedback, value[0], value[1])
    code = await _call(
        channel,
        "/feedback.v1.FeedbackService/CreateFeedback",
        pb.CreateFeedbackRequest(feedback=feedback).SerializeToString(),
    )
    assert code in {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS}


_KINDS = {None: ValueKind.NONE, "thumb": ValueKind.THUMB, "score": ValueKind.SCORE, "label": ValueKind.LABEL}


async def test_after_the_fuzzing_everything_stored_is_valid_and_the_server_is_healthy(
    server: FeedbackServer, channel: grpc.aio.Channel
) -> None:
    rows = await server.engine.run(
        lambda client: (
            client.query(
                "SELECT count() FROM feedback WHERE NOT match(project, '^[a-z0-9][a-z0-9._-]{0,63}$')"
            ).result_rows
        )
    )
    assert rows == [(0,)], "a row with an invalid project was stored"
    stub = pb_stub(channel)
    token = ""
    checked = 0
    while True:
        page = await stub.ListFeedback(pb.ListFeedbackRequest(project=FUZZ_PROJECT, page_size=1000, page_token=token))
        for stored in page.feedback:
            kind = stored.WhichOneof("value")
            draft = FeedbackInput(
                project=stored.project,
                feedback_id=stored.feedback_id,
                trace_id=stored.trace_id,
                span_id=stored.span_id,
                session_id=stored.session_id,
                model=stored.model,
                model_version=stored.model_version,
                key=stored.key,
                value_kind=_KINDS[kind],
                thumb=stored.thumb,
                score=stored.score,
                label=stored.label,
                comment=stored.comment,
                correction=stored.correction,
                source=stored.source,
                author=stored.author,
                metadata=dict(stored.metadata),
            )
            validate_new_feedback(draft, now=stored.create_time.ToDatetime())  # raises if anything is invalid
            assert not (kind == "score" and not math.isfinite(stored.score))
            checked += 1
        token = page.next_page_token
        if not token:
            break
    health = health_pb2_grpc.HealthStub(channel)
    response = await health.Check(health_pb2.HealthCheckRequest(service="feedback.v1.FeedbackService"))
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    assert checked > 5, f"only {checked} fuzzed feedback were stored: the fuzzer mostly tests refusals"


def pb_stub(channel: grpc.aio.Channel) -> Any:
    from feedback_proto.v1 import feedback_service_pb2_grpc

    return feedback_service_pb2_grpc.FeedbackServiceStub(channel)
