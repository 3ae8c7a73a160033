"""The credential of each call and the scopes each RPC needs (applied by api/calls.py on every transport)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feedback_service.domain.access.auth import Principal, Scope
from feedback_service.domain.errors import PermissionDeniedError

_FEEDBACK = "/feedback.v1.FeedbackService/"
_KEYS = "/feedback.v1.ApiKeyService/"
_SCHEMAS = "/feedback.v1.FeedbackKeyService/"
_ANNOTATION = "/feedback.v1.AnnotationService/"

# Any one of the listed scopes allows the call.
METHOD_SCOPES: dict[str, frozenset[Scope]] = {
    _FEEDBACK + "CreateFeedback": frozenset({Scope.INGEST, Scope.ANNOTATE}),
    _FEEDBACK + "BatchCreateFeedback": frozenset({Scope.INGEST, Scope.ANNOTATE}),
    _FEEDBACK + "UpdateFeedback": frozenset({Scope.ANNOTATE}),
    _FEEDBACK + "DeleteFeedback": frozenset({Scope.ANNOTATE}),
    _FEEDBACK + "GetFeedback": frozenset({Scope.READ}),
    _FEEDBACK + "ListFeedback": frozenset({Scope.READ}),
    _FEEDBACK + "StreamAggregates": frozenset({Scope.READ}),
    _FEEDBACK + "ExportFeedback": frozenset({Scope.READ}),
    _FEEDBACK + "CompareVersions": frozenset({Scope.READ}),
    _FEEDBACK + "MintFeedbackToken": frozenset({Scope.INGEST}),
    _KEYS + "CreateApiKey": frozenset({Scope.ADMIN}),
    _KEYS + "ListApiKeys": frozenset({Scope.ADMIN}),
    _KEYS + "RevokeApiKey": frozenset({Scope.ADMIN}),
    _SCHEMAS + "CreateFeedbackKey": frozenset({Scope.ANNOTATE}),
    _SCHEMAS + "GetFeedbackKey": frozenset({Scope.READ, Scope.ANNOTATE}),
    _SCHEMAS + "ListFeedbackKeys": frozenset({Scope.READ, Scope.ANNOTATE}),
    _SCHEMAS + "UpdateFeedbackKey": frozenset({Scope.ANNOTATE}),
    _SCHEMAS + "ArchiveFeedbackKey": frozenset({Scope.ANNOTATE}),
    _ANNOTATION + "CreateQueue": frozenset({Scope.ANNOTATE}),
    _ANNOTATION + "AddQueueItems": frozenset({Scope.ANNOTATE}),
    _ANNOTATION + "ListQueues": frozenset({Scope.READ, Scope.ANNOTATE}),
    _ANNOTATION + "GetQueueStats": frozenset({Scope.READ, Scope.ANNOTATE}),
    _ANNOTATION + "ClaimNextItem": frozenset({Scope.ANNOTATE}),
    _ANNOTATION + "SubmitAnnotation": frozenset({Scope.ANNOTATE}),
    _ANNOTATION + "SkipItem": frozenset({Scope.ANNOTATE}),
    _ANNOTATION + "GetAgreement": frozenset({Scope.READ, Scope.ANNOTATE}),
    _ANNOTATION + "GetItemContext": frozenset({Scope.ANNOTATE}),
    _ANNOTATION + "CreateConsoleLink": frozenset({Scope.ANNOTATE, Scope.ADMIN}),
}

# What a console link may call, besides its scope: a reviewer link reviews (as its reviewer, in its
# queue), a read link reads dashboards. Neither manages queues, keys or links, nor reads raw feedback.
_LINK_READS = frozenset(
    {
        _ANNOTATION + "ListQueues",
        _ANNOTATION + "GetQueueStats",
        _ANNOTATION + "GetAgreement",
        _SCHEMAS + "GetFeedbackKey",
        _SCHEMAS + "ListFeedbackKeys",
    }
)
REVIEWER_LINK_METHODS = _LINK_READS | {
    _ANNOTATION + "ClaimNextItem",
    _ANNOTATION + "GetItemContext",
    _ANNOTATION + "SubmitAnnotation",
    _ANNOTATION + "SkipItem",
}
READ_LINK_METHODS = _LINK_READS | {_FEEDBACK + "StreamAggregates", _FEEDBACK + "CompareVersions"}


def bearer_of(metadata: Sequence[tuple[str, Any]] | None, request: object) -> str | None:
    """The credential of ``authorization: Bearer <credential>`` (gRPC metadata or HTTP header); else a
    request's ``feedback_token`` (browsers cannot always set headers); else None."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, credential = value.strip().partition(" ")
            return credential.strip() if scheme.lower() == "bearer" else ""
    token = getattr(request, "feedback_token", "")
    return token if isinstance(token, str) and token else None


def authorize(principal: Principal, method: str) -> None:
    if principal.token is not None:
        if method != _FEEDBACK + "CreateFeedback":
            raise PermissionDeniedError("a feedback token only allows CreateFeedback")
        return
    link = principal.console
    if link is not None:
        if method not in (READ_LINK_METHODS if link.read else REVIEWER_LINK_METHODS):
            kind = "a read-only console link" if link.read else "a reviewer's console link"
            raise PermissionDeniedError(f"{method.rsplit('/', 1)[-1]} is not open to {kind}")
        return
    allowed = METHOD_SCOPES.get(method)
    if allowed is None:
        raise PermissionDeniedError(f"{method} is not open to API keys")
    if not allowed & principal.scopes:
        names = " or ".join(sorted(repr(s.value) for s in allowed))
        granted = ", ".join(sorted(s.value for s in principal.scopes)) or "none"
        raise PermissionDeniedError(f"{method.rsplit('/', 1)[-1]} needs the {names} scope; this key has: {granted}")
