"""One error type for every failed call, with the server's field violations."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """A bad request field, e.g. ``FieldViolation("feedback.score", "must be a finite number")``."""

    field: str
    description: str


class FeedbackError(Exception):
    """A call failed. ``code`` is the gRPC status code; ``reason`` the server's ErrorInfo reason, if any."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        field_violations: tuple[FieldViolation, ...] = (),
        reason: str = "",
        retry_delay_s: float | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.field_violations = field_violations
        self.reason = reason
        # The server's RetryInfo: how long to wait before trying again (rate limits, full queues).
        self.retry_delay_s = retry_delay_s

    @classmethod
    def from_rpc_error(cls, error: grpc.aio.AioRpcError) -> FeedbackError:
        status = status_pb2.Status()
        for key, value in error.trailing_metadata() or ():
            if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
                status.ParseFromString(value)
        return cls.from_status(error.code(), error.details() or "", status)

    @classmethod
    def from_status(cls, code: grpc.StatusCode, message: str, status: status_pb2.Status) -> FeedbackError:
        violations: list[FieldViolation] = []
        reason = ""
        retry_delay_s: float | None = None
        for detail in status.details:
            bad_request = error_details_pb2.BadRequest()
            info = error_details_pb2.ErrorInfo()
            retry_info = error_details_pb2.RetryInfo()
            if detail.Unpack(bad_request):
                violations += [FieldViolation(v.field, v.description) for v in bad_request.field_violations]
            elif detail.Unpack(info):
                reason = info.reason
            elif detail.Unpack(retry_info):
                retry_delay_s = retry_info.retry_delay.ToTimedelta().total_seconds()
        return cls(code, message, tuple(violations), reason, retry_delay_s)

    @classmethod
    def from_status_proto(cls, status: status_pb2.Status) -> FeedbackError:
        """For a per-item error of BatchCreateFeedback."""
        code = next((c for c in grpc.StatusCode if c.value[0] == status.code), grpc.StatusCode.UNKNOWN)
        return cls.from_status(code, status.message, status)
