"""Property: after any sequence of creates, retried creates, vote replacements, updates and deletes, every
aggregate equals a brute-force recomputation over the current feedback read back through the API."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedback_proto.v1 import feedback_pb2
from feedback_proto.v1 import feedback_service_pb2 as pb
from tests.support.brute_force import authors_by_group
from tests.test_aggregates import assert_matches_brute_force

if TYPE_CHECKING:  # the async stub class exists only in the .pyi stubs
    from feedback_proto.v1.feedback_service_pb2_grpc import FeedbackServiceAsyncStub as FeedbackServiceStub

_values = st.one_of(
    st.sampled_from([feedback_pb2.THUMB_UP, feedback_pb2.THUMB_DOWN]).map(lambda t: {"thumb": t}),
    st.sampled_from([0.0, 0.25, 1.0, 3.0, 4.5, -1.0, 150.0, 0.1]).map(lambda s: {"score": s}),
    st.sampled_from(["billing", "other", "spam"]).map(lambda label: {"label": label}),
    st.just({"comment": "only a comment"}),
)
_new_feedback = st.fixed_dictionaries(
    {
        "model_version": st.sampled_from(["v1", "v2"]),
        "key": st.sampled_from(["thumbs", "quality"]),
        "trace_id": st.sampled_from(["t1", "t2"]),
        "source": st.sampled_from([feedback_pb2.SOURCE_USER, feedback_pb2.SOURCE_REVIEWER]),
        "author": st.sampled_from(["ann", "bob", ""]),
        "value": _values,
        "comment": st.sampled_from(["", "why"]),
        "correction": st.sampled_from(["", "the fix"]),
    }
)
_operation = st.one_of(
    st.tuples(st.just("create"), _new_feedback),
    st.tuples(st.just("retry"), st.integers(min_value=0, max_value=50)),
    st.tuples(st.just("update"), st.integers(min_value=0, max_value=50), _values),
    st.tuples(st.just("delete"), st.integers(min_value=0, max_value=50)),
)

OK_OR_EXPECTED = {grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(_operation, min_size=1, max_size=25))
async def test_aggregates_equal_brute_force_after_any_history(
    stub: FeedbackServiceStub, operations: list[tuple[Any, ...]]
) -> None:
    project = f"prop-{uuid.uuid4().hex[:10]}"
    sent: list[feedback_pb2.Feedback] = []  # every create request, so retries can resend them verbatim
    created: list[feedback_pb2.Feedback] = []  # those stored: their authors count even once deleted or replaced
    for operation in operations:
        try:
            if operation[0] == "create":
                fields = dict(operation[1])
                value = fields.pop("value")
                fields.update(value)
                feedback = feedback_pb2.Feedback(project=project, feedback_id=uuid.uuid4().hex, model="bot", **fields)
                sent.append(feedback)
                await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=feedback))
                created.append(feedback)
            elif not sent:
                continue
            elif operation[0] == "retry":
                await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=sent[operation[1] % len(sent)]))
            elif operation[0] == "update":
                target = sent[operation[1] % len(sent)]
                change = feedback_pb2.Feedback(project=project, feedback_id=target.feedback_id, **operation[2])
                mask = FieldMask(paths=["thumb", *(["comment"] if "comment" in operation[2] else [])])
                await stub.UpdateFeedback(pb.UpdateFeedbackRequest(feedback=change, update_mask=mask))
            else:
                target = sent[operation[1] % len(sent)]
                await stub.DeleteFeedback(pb.DeleteFeedbackRequest(project=project, feedback_id=target.feedback_id))
        except grpc.aio.AioRpcError as error:
            # Deleted or replaced feedback cannot be updated, deleted or re-created; an update that
            # would leave feedback empty is refused. Anything else is a failure.
            assert error.code() in OK_OR_EXPECTED | {grpc.StatusCode.INVALID_ARGUMENT}, error.details()
            if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                assert "at least one of" in (error.details() or ""), error.details()
    await assert_matches_brute_force(stub, project, gone_authors=authors_by_group(created))
