"""The HTTP face's protobuf JSON (api/fast_json.py) gives exactly what google.protobuf.json_format gives, on
generated messages of every request and response type of the API, and the same errors on bad input."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedback_proto.v1 import annotation_pb2, api_keys_pb2, feedback_keys_pb2, feedback_service_pb2
from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_service.api.fast_json import message_from_json, message_to_json

SERVICES = [
    module.DESCRIPTOR.services_by_name[name]
    for module, name in (
        (feedback_service_pb2, "FeedbackService"),
        (feedback_keys_pb2, "FeedbackKeyService"),
        (annotation_pb2, "AnnotationService"),
        (api_keys_pb2, "ApiKeyService"),
    )
]
MESSAGES = sorted(
    {
        message_type.full_name: message_factory.GetMessageClass(message_type)
        for service in SERVICES
        for method in service.methods
        for message_type in (method.input_type, method.output_type)
    }.items()
)
_IDENTIFIER = st.from_regex(r"[a-z]{1,8}(_[a-z]{1,8}){0,2}", fullmatch=True)
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
}


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        return st.integers(low, high)
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return st.floats(allow_nan=False)  # NaN is never equal to itself: checked on its own below
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_STRING:
        return st.text(max_size=12)
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=12)
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return st.sampled_from([value.number for value in field.enum_type.values]) | st.integers(0, 40)
    raise AssertionError(f"no strategy for {field.full_name}")


def _well_known(descriptor: Descriptor) -> st.SearchStrategy[Message] | None:
    cls: Any = message_factory.GetMessageClass(descriptor)
    if descriptor.full_name == "google.protobuf.Timestamp":
        return st.builds(cls, seconds=st.integers(-62135596800, 253402300799), nanos=st.integers(0, 999_999_999))
    if descriptor.full_name == "google.protobuf.Duration":
        return st.builds(cls, seconds=st.integers(0, 10**9), nanos=st.integers(0, 999_999_999))
    if descriptor.full_name == "google.protobuf.FieldMask":
        return st.builds(cls, paths=st.lists(_IDENTIFIER, max_size=3))
    if descriptor.full_name == "google.protobuf.Any":

        def packed(reason: str) -> Message:
            any_message: Any = cls()
            any_message.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="feedback.v1"))
            return any_message  # type: ignore[no-any-return]

        return st.builds(packed, st.text(max_size=8))
    return None


def messages(descriptor: Any, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of ``descriptor`` with any subset of their fields set, nested up to three levels."""
    known = _well_known(descriptor)
    if known is not None:
        return known
    cls = message_factory.GetMessageClass(descriptor)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
            fields[field.name] = st.dictionaries(_scalar(key), _value(value, depth), max_size=3)
        elif field.is_repeated:
            fields[field.name] = st.lists(_value(field, depth), max_size=3)
        else:
            fields[field.name] = _value(field, depth)
    chosen = st.fixed_dictionaries({}, optional=fields) if depth < 3 else st.just({})
    oneofs = [oneof for oneof in descriptor.oneofs if len(oneof.fields) > 1]

    def build(values: dict[str, Any]) -> Message:
        for oneof in oneofs:  # one member of each oneof at most, as a message can hold
            present = [f.name for f in oneof.fields if f.name in values]
            for name in present[1:]:
                del values[name]
        return cls(**values)

    return chosen.map(build)


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        return st.deferred(lambda: messages(field.message_type, depth + 1))
    return _scalar(field)


@pytest.mark.parametrize(("name", "cls"), MESSAGES, ids=[name for name, _ in MESSAGES])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_json_equals_json_format_both_ways(name: str, cls: type[Message], data: st.DataObject) -> None:
    message = data.draw(messages(cls.DESCRIPTOR))
    assert json.loads(message_to_json(message)) == json_format.MessageToDict(message)
    for names in (False, True):  # lowerCamelCase and proto field names
        text = json_format.MessageToJson(message, preserving_proto_field_name=names)
        assert message_from_json(text.encode(), cls) == message


def test_non_finite_doubles_and_big_integers_keep_their_json_forms() -> None:
    feedback = pb.CreateFeedbackRequest().feedback
    feedback.score = math.nan
    feedback.revision = 2**62
    encoded = json.loads(message_to_json(pb.CreateFeedbackRequest(feedback=feedback)))
    assert encoded["feedback"]["score"] == "NaN"
    assert encoded["feedback"]["revision"] == str(2**62)
    for text, expected in (("Infinity", math.inf), ("-Infinity", -math.inf), (1, 1.0)):
        decoded = message_from_json(json.dumps({"feedback": {"score": text}}).encode(), pb.CreateFeedbackRequest)
        assert isinstance(decoded, pb.CreateFeedbackRequest)
        assert decoded.feedback.score == expected
    decoded = message_from_json(b'{"feedback": {"score": "NaN", "revision": "7"}}', pb.CreateFeedbackRequest)
    assert isinstance(decoded, pb.CreateFeedbackRequest)
    assert math.isnan(decoded.feedback.score)
    assert decoded.feedback.revision == 7


ODD_INPUTS = [
    b'{"feedback": {"thumb": "THUMB_SIDEWAYS"}}',  # an unknown enum name: ignored
    b'{"feedback": {"thumb": 1, "key": "thumbs"}}',
    b'{"feedback": {"thumb": "1"}}',
    b'{"feedback": {"revision": 1.0}}',
    b'{"feedback": {"revision": 1.5}}',
    b'{"feedback": {"revision": "12a"}}',
    b'{"feedback": {"traceId": 5}}',
    b'{"feedback": {"traceId": null}}',
    b'{"feedback": {"traceId": "a", "trace_id": "b"}}',
    b'{"feedback": {"traceId": "a"}, "feedback": {}}',
    b'{"feedback": {"thumb": "THUMB_UP", "score": 2}}',  # two members of the value oneof
    b'{"feedback": {"createTime": "2026-01-01T00:00:00Z"}}',
    b'{"feedback": {"createTime": "yesterday"}}',
    b'{"feedback": {"metadata": {"a": "b", "c": 1}}}',
    b'{"feedback": {"metadata": []}}',
    b'{"feedback": []}',
    b'{"unknownField": {"deep": [1, 2]}}',
    b"[]",
    b"not json",
    b'{"feedback": {"comment": "\\ud800"}}',  # a lone surrogate: not UTF-8
    b'{"feedback": {"source": 99}}',  # an enum number the proto does not name
]


@pytest.mark.parametrize("data", ODD_INPUTS)
def test_odd_input_decodes_or_fails_as_json_format_does(data: bytes) -> None:
    try:
        expected: Message | None = pb.CreateFeedbackRequest()
        assert expected is not None
        json_format.Parse(data, expected, ignore_unknown_fields=True)
    except json_format.ParseError:
        expected = None
    if expected is None:
        with pytest.raises(json_format.ParseError):
            message_from_json(data, pb.CreateFeedbackRequest)
    else:
        assert message_from_json(data, pb.CreateFeedbackRequest) == expected
