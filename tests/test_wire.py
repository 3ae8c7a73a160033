"""Whatever bytes or field values arrive, the answer is never INTERNAL or UNKNOWN, and the server stays up."""

from __future__ import annotations

import math
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedback_proto.v1 import feedback_pb2
from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_service.server import FeedbackServer
from tests.helpers import field_violations

METHODS = [
    "CreateFeedback",
    "BatchCreateFeedback",
    "GetFeedback",
    "ListFeedback",
    "UpdateFeedback",
    "DeleteFeedback",
]
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _raw_call(channel: grpc.aio.Channel, method: str) -> Any:
    return channel.unary_unary(f"/feedback.v1.FeedbackService/{method}")


@pytest.mark.parametrize("method", METHODS)
async def test_bytes_that_are_not_a_message_are_invalid_argument(channel: grpc.aio.Channel, method: str) -> None:
    bad_utf8_project = b"\x0a\x04\x12\x02\xff\xfe" if method != "GetFeedback" else b"\x0a\x02\xff\xfe"
    for payload in (b"\xff\xff\xff\xff", b"\x0a\x05\x01", bad_utf8_project):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _raw_call(channel, method)(payload, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "request" in field_violations(caught.value)


@FUZZ
@given(method=st.sampled_from(METHODS), payload=st.binary(max_size=300))
async def test_random_bytes_never_yield_internal_or_unknown(
    channel: grpc.aio.Channel, method: str, payload: bytes
) -> None:
    try:
        await _raw_call(channel, method)(payload, timeout=10)
    except grpc.aio.AioRpcError as error:
        assert error.code() not in NEVER, (error.code(), error.details())


_text = st.text(max_size=80) | st.sampled_from(["", "thumbs", "'; DROP TABLE feedback; --", "a" * 200, "0" * 32])
_feedback = st.builds(
    feedback_pb2.Feedback,
    feedback_id=_text,
    project=st.sampled_from(["fuzz", "", "Fuzz", "fu zz"]),
    trace_id=_text,
    span_id=_text,
    model=_text,
    key=st.sampled_from(["thumbs", "", "Bad", "k" * 70]),
    comment=_text,
    source=st.integers(min_value=-3, max_value=7),
    author=_text,
    metadata=st.dictionaries(_text, _text, max_size=3),
)
_value = st.one_of(
    st.none(),
    st.integers(min_value=-2, max_value=5).map(lambda n: ("thumb", n)),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda x: ("score", x)),
    _text.map(lambda s: ("label", s)),
)


@FUZZ
@given(feedback=_feedback, value=_value)
async def test_random_feedback_is_stored_or_refused_cleanly(
    channel: grpc.aio.Channel, server: FeedbackServer, feedback: feedback_pb2.Feedback, value: tuple[str, Any] | None
) -> None:
    if value is not None:
        setattr(feedback, value[0], value[1])
    call = _raw_call(channel, "CreateFeedback")
    request = pb.CreateFeedbackRequest(feedback=feedback)
    try:
        stored = pb.CreateFeedbackResponse.FromString(await call(request.SerializeToString(), timeout=10)).feedback
    except grpc.aio.AioRpcError as error:
        assert error.code() in {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS}, error.details()
        return
    assert stored.project == "fuzz"
    if stored.WhichOneof("value") == "score":
        assert math.isfinite(stored.score)
    assert stored.comment == feedback.comment
