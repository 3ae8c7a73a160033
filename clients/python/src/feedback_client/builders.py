"""Feedback messages for the common cases, e.g. ``client.log(thumbs_up("4bf9...", model="bot"))``.

Each builder takes the trace id first (defaulting, with the span id, to the current OpenTelemetry
span) and the same optional context (:class:`FeedbackContext`). An empty project is filled in at send
time by the client's default project, or by the server from the API key's project.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict, Unpack

from feedback_client.tracing import current_trace_ids
from feedback_proto.v1.feedback_pb2 import Feedback, Source, Thumb

DEFAULT_THUMBS_KEY = "thumbs"


class FeedbackContext(TypedDict, total=False):
    """Optional fields every builder accepts; see the Feedback message for their rules."""

    span_id: str
    project: str
    model: str
    model_version: str
    session_id: str
    author: str
    source: Source.ValueType
    comment: str
    metadata: Mapping[str, str]
    feedback_id: str


def _build(trace_id: str | None, key: str, context: FeedbackContext) -> Feedback:
    span_id = context.get("span_id")
    if trace_id is None:
        current = current_trace_ids()
        if current is None:
            raise ValueError(
                "trace_id is required: pass the trace id of the judged AI call, or give feedback inside "
                "its OpenTelemetry span (with the 'otel' extra installed)"
            )
        trace_id, current_span = current
        span_id = current_span if span_id is None else span_id
    return Feedback(
        feedback_id=context.get("feedback_id", ""),
        project=context.get("project", ""),
        trace_id=trace_id,
        span_id=span_id or "",
        session_id=context.get("session_id", ""),
        model=context.get("model", ""),
        model_version=context.get("model_version", ""),
        key=key,
        comment=context.get("comment", ""),
        author=context.get("author", ""),
        source=context.get("source", Source.SOURCE_UNSPECIFIED),
        metadata=dict(context.get("metadata", {})),
    )


def _vote(trace_id: str | None, key: str, thumb: Thumb.ValueType, context: FeedbackContext) -> Feedback:
    # A thumb is what end users give; say so unless the caller says otherwise.
    feedback = _build(trace_id, key, {"source": Source.SOURCE_USER, **context})
    feedback.thumb = thumb
    return feedback


def thumbs_up(
    trace_id: str | None = None, *, key: str = DEFAULT_THUMBS_KEY, **context: Unpack[FeedbackContext]
) -> Feedback:
    """A thumbs-up vote, by default from an end user (SOURCE_USER) under the key ``thumbs``."""
    return _vote(trace_id, key, Thumb.THUMB_UP, context)


def thumbs_down(
    trace_id: str | None = None, *, key: str = DEFAULT_THUMBS_KEY, **context: Unpack[FeedbackContext]
) -> Feedback:
    """A thumbs-down vote, by default from an end user (SOURCE_USER) under the key ``thumbs``."""
    return _vote(trace_id, key, Thumb.THUMB_DOWN, context)


def score(trace_id: str | None = None, *, key: str, value: float, **context: Unpack[FeedbackContext]) -> Feedback:
    """A numeric score, e.g. ``score(trace_id, key="helpfulness", value=4)``."""
    feedback = _build(trace_id, key, context)
    feedback.score = value
    return feedback


def label(trace_id: str | None = None, *, key: str, value: str, **context: Unpack[FeedbackContext]) -> Feedback:
    """A categorical label, e.g. ``label(trace_id, key="topic", value="billing")``."""
    feedback = _build(trace_id, key, context)
    feedback.label = value
    return feedback


def comment(
    trace_id: str | None = None, *, text: str, key: str = "comment", **context: Unpack[FeedbackContext]
) -> Feedback:
    """A free-text comment without a value (``text`` replaces any ``comment`` in the context)."""
    return _build(trace_id, key, {**context, "comment": text})


def correct(
    trace_id: str | None = None, *, correction: str, key: str = "correction", **context: Unpack[FeedbackContext]
) -> Feedback:
    """The right output for the judged call, optionally with a comment."""
    feedback = _build(trace_id, key, context)
    feedback.correction = correction
    return feedback
