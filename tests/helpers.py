"""Small builders shared by tests."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from feedback_proto.v1 import feedback_pb2


def thumbs_up(project: str, **fields: Any) -> feedback_pb2.Feedback:
    values: dict[str, Any] = {
        "project": project,
        "trace_id": uuid.uuid4().hex,
        "key": "thumbs",
        "thumb": feedback_pb2.THUMB_UP,
        "source": feedback_pb2.SOURCE_USER,
    }
    values.update(fields)
    return feedback_pb2.Feedback(**values)


def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The BadRequest field violations in an error's status details, by field."""
    status = status_pb2.Status()
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            assert isinstance(value, bytes)
            status.ParseFromString(value)
    found: dict[str, str] = {}
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            found.update({v.field: v.description for v in bad_request.field_violations})
    return found
