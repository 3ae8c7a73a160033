"""The one exception tree of the service; the API layer maps it to gRPC codes in one place."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field: its path in the request (e.g. ``feedback.score``) and what is wrong."""

    field: str
    description: str


class FeedbackServiceError(Exception):
    """Base of every error the service reports to callers.

    ``reason`` is a stable, machine-readable name (google.rpc.ErrorInfo.reason).
    """

    reason = "FEEDBACK_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgumentError(FeedbackServiceError):
    """The request is malformed; ``violations`` names every bad field."""

    reason = "INVALID_REQUEST"

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations = tuple(violations)
        summary = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"invalid request: {summary}")


class NotFoundError(FeedbackServiceError):
    """The named feedback does not exist (or was deleted)."""

    reason = "FEEDBACK_NOT_FOUND"


class AlreadyExistsError(FeedbackServiceError):
    """A feedback_id is already used by different feedback."""

    reason = "FEEDBACK_ID_IN_USE"


class StoreUnavailableError(FeedbackServiceError):
    """The database cannot be reached; the call may be retried."""

    reason = "STORAGE_UNAVAILABLE"


class ShuttingDownError(FeedbackServiceError):
    """The server is shutting down: a following stream ends with this at once (and a new one is refused)
    rather than holding the shutdown for its grace period; the caller reconnects, to another replica or
    to the restarted server."""

    reason = "SERVER_SHUTTING_DOWN"

    def __init__(self, message: str = "server shutting down") -> None:
        super().__init__(message)


class QueueFullError(FeedbackServiceError):
    """The write queue is full; the caller should back off and retry."""

    reason = "WRITE_QUEUE_FULL"


class StoreInUseError(FeedbackServiceError):
    """The embedded engine's data dir is held by another process."""

    reason = "DATA_DIR_IN_USE"


class UnauthenticatedError(FeedbackServiceError):
    """No valid credential: missing, malformed, unknown, revoked or expired."""

    reason = "UNAUTHENTICATED"


class PermissionDeniedError(FeedbackServiceError):
    """A valid credential that may not do this: wrong scope, another project, out of a token's binding."""

    reason = "PERMISSION_DENIED"


class OutsideBindingError(PermissionDeniedError):
    """A request field outside what the credential is bound to (a console link's reviewer or queue).

    ``field`` is the request field's path; it travels in the ErrorInfo's metadata as ``field``.
    """

    reason = "OUTSIDE_CREDENTIAL_BINDING"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class FailedPreconditionError(FeedbackServiceError):
    """The server is not set up for this call (e.g. no token secrets configured)."""

    reason = "FAILED_PRECONDITION"


class RateLimitedError(FeedbackServiceError):
    """A credential spent its rate limit; ``retry_after_s`` says when enough budget is back."""

    reason = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeadlineExceededError(FeedbackServiceError):
    """The call's deadline passed before its work was done."""

    reason = "DEADLINE_EXCEEDED"


class KeyNotFoundError(NotFoundError):
    """No feedback key schema of that name in the project."""

    reason = "FEEDBACK_KEY_NOT_FOUND"


class KeyExistsError(AlreadyExistsError):
    """A feedback key of that name is already defined (perhaps archived)."""

    reason = "FEEDBACK_KEY_EXISTS"


class KeyArchivedError(FailedPreconditionError):
    """The feedback key is archived and takes no new feedback."""

    reason = "FEEDBACK_KEY_ARCHIVED"


class QueueNotFoundError(NotFoundError):
    """No annotation queue with that id in the project."""

    reason = "QUEUE_NOT_FOUND"


class QueueEmptyError(NotFoundError):
    """Nothing left in the queue for this reviewer."""

    reason = "QUEUE_EMPTY"


class LeaseExpiredError(FailedPreconditionError):
    """The claim's lease ended (or the claim is unknown, or already used); nothing was stored."""

    reason = "LEASE_EXPIRED"
