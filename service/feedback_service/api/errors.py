"""The one mapping from domain errors to gRPC status (AIP-193: ErrorInfo, BadRequest)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from feedback_service.domain.errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    FeedbackServiceError,
    InvalidArgumentError,
    NotFoundError,
    OutsideBindingError,
    PermissionDeniedError,
    QueueFullError,
    RateLimitedError,
    ShuttingDownError,
    StoreInUseError,
    StoreUnavailableError,
    UnauthenticatedError,
)

ERROR_DOMAIN = "feedback.v1"

_CODES: dict[type[FeedbackServiceError], grpc.StatusCode] = {
    InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    NotFoundError: grpc.StatusCode.NOT_FOUND,
    AlreadyExistsError: grpc.StatusCode.ALREADY_EXISTS,
    StoreUnavailableError: grpc.StatusCode.UNAVAILABLE,
    StoreInUseError: grpc.StatusCode.UNAVAILABLE,
    ShuttingDownError: grpc.StatusCode.UNAVAILABLE,
    QueueFullError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    FailedPreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
    RateLimitedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DeadlineExceededError: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def grpc_code(error: FeedbackServiceError) -> grpc.StatusCode:
    for kind in type(error).__mro__:
        if kind in _CODES:
            return _CODES[kind]
    return grpc.StatusCode.INTERNAL


def _packed(detail: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(detail)
    return packed


def status_proto(error: FeedbackServiceError) -> status_pb2.Status:
    """google.rpc.Status for an error, as sent in trailers or in a batch item's result."""
    code = grpc_code(error)
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN)
    if isinstance(error, OutsideBindingError):
        info.metadata["field"] = error.field
    details = [_packed(info)]
    if isinstance(error, InvalidArgumentError):
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in error.violations
        ]
        details.append(_packed(error_details_pb2.BadRequest(field_violations=violations)))
    if isinstance(error, RateLimitedError):
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(max(1, round(error.retry_after_s * 1e9)))
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
    return status_pb2.Status(code=code.value[0], message=error.message, details=details)


INTERNAL_STATUS = status_pb2.Status(code=code_pb2.INTERNAL, message="internal error; it has been logged")
