"""feedback.v1 messages <-> domain objects."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from google.protobuf.timestamp_pb2 import Timestamp

from feedback_proto.v1 import feedback_pb2, feedback_service_pb2
from feedback_service.domain.feedback.listing import FeedbackFilter, micros_since_epoch
from feedback_service.domain.model import Feedback, FeedbackInput, FeedbackValue, Source, ValueKind, enum_member
from feedback_service.domain.validation import ViolationCollector

_VALUE_KINDS = {None: ValueKind.NONE, "thumb": ValueKind.THUMB, "score": ValueKind.SCORE, "label": ValueKind.LABEL}


def feedback_input(message: feedback_pb2.Feedback, *, project: str | None = None) -> FeedbackInput:
    """What the caller sent; output-only fields (times, revision) are ignored.

    ``project`` replaces the message's project (the one the caller's credential allows).
    """
    metadata = message.metadata
    # Positional, in FeedbackInput's field order (tests/test_create_fast_paths.py checks each field): a
    # third cheaper than keywords on this per-item path.
    return FeedbackInput(
        message.project if project is None else project,
        message.feedback_id,
        message.trace_id,
        message.span_id,
        message.session_id,
        message.model,
        message.model_version,
        message.key,
        _VALUE_KINDS[message.WhichOneof("value")],
        message.thumb,
        message.score,
        message.label,
        message.comment,
        message.correction,
        message.source,
        message.author,
        # A comprehension over the map is twice as fast as dict(map); most feedback has no metadata.
        {name: metadata[name] for name in metadata} if metadata else {},
    )


def timestamp_of(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    _set_time(stamp, moment)
    return stamp


def _set_time(stamp: Timestamp, moment: datetime) -> None:
    micros = micros_since_epoch(moment)
    stamp.seconds = micros // 1_000_000
    stamp.nanos = (micros % 1_000_000) * 1000


def _put_metadata(message: feedback_pb2.Feedback, metadata: Mapping[str, str]) -> None:
    # Entry by entry: several times cheaper than passing a dict (even an empty one) to the constructor.
    if metadata:
        entries = message.metadata
        for name, text in metadata.items():
            entries[name] = text


def _put_value(message: feedback_pb2.Feedback, value: FeedbackValue) -> None:
    if value.kind is ValueKind.THUMB:
        message.thumb = feedback_pb2.Thumb.ValueType(int(value.thumb))
    elif value.kind is ValueKind.SCORE:
        message.score = value.score
    elif value.kind is ValueKind.LABEL:
        message.label = value.label


def feedback_message(
    feedback: Feedback, make: Callable[..., feedback_pb2.Feedback] = feedback_pb2.Feedback
) -> feedback_pb2.Feedback:
    """The message of ``feedback``; ``make`` may be a repeated field's ``add``, which builds it in
    place in a response (exports: a copy of every message into the response saved)."""
    message = make(
        feedback_id=feedback.feedback_id,
        project=feedback.project,
        trace_id=feedback.trace_id,
        span_id=feedback.span_id,
        session_id=feedback.session_id,
        model=feedback.model,
        model_version=feedback.model_version,
        key=feedback.key,
        comment=feedback.comment,
        correction=feedback.correction,
        source=feedback_pb2.Source.ValueType(int(feedback.source)),
        author=feedback.author,
        revision=feedback.revision,
        created_by=feedback.created_by,
        updated_by=feedback.updated_by,
    )
    if feedback.create_time is not None:
        _set_time(message.create_time, feedback.create_time)
    if feedback.update_time is not None:
        _set_time(message.update_time, feedback.update_time)
    _put_metadata(message, feedback.metadata)
    _put_value(message, feedback.value)
    return message


def put_created_feedback(message: feedback_pb2.Feedback, sent: feedback_pb2.Feedback, stored: Feedback) -> None:
    """Make ``message`` equal feedback_message(stored), for ``stored`` just created from the request item ``sent``.

    Several times cheaper than feedback_message() on the create path: the request is copied whole, then
    every field the server sets or may rewrite (ids and trace ids normalised, the project and the fields
    a feedback token binds, times, revision, audit) is set from ``stored``. The fields left as copied
    (session_id, key, the value, comment, correction, metadata) are stored exactly as sent. Never for a
    retry, whose stored record is an earlier one.
    """
    message.CopyFrom(sent)
    message.DiscardUnknownFields()  # feedback_message() carries none
    message.project = stored.project
    message.feedback_id = stored.feedback_id
    message.trace_id = stored.trace_id
    message.span_id = stored.span_id
    message.model = stored.model
    message.model_version = stored.model_version
    message.source = feedback_pb2.Source.ValueType(int(stored.source))
    message.author = stored.author
    # Output-only fields: the caller's values, if any, are overwritten or cleared.
    _put_time(message, "create_time", stored.create_time)
    _put_time(message, "update_time", stored.update_time)
    message.revision = stored.revision
    message.created_by = stored.created_by
    message.updated_by = stored.updated_by


def _put_time(
    message: feedback_pb2.Feedback, name: Literal["create_time", "update_time"], moment: datetime | None
) -> None:
    if moment is None:
        message.ClearField(name)
    else:
        _set_time(getattr(message, name), moment)


EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(hours=1)


def checked_time(stamp: Timestamp, name: str, found: ViolationCollector) -> datetime | None:
    """A request timestamp, if valid and between 2000 and one hour from now; else a violation."""
    try:
        moment = stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as error:
        found.add(name, f"is not a valid timestamp: {error}")
        return None
    if moment < EARLIEST_TIME:
        found.add(name, "must not be before 2000-01-01")
        return None
    if moment > datetime.now(UTC) + FUTURE_SLACK:
        found.add(name, "must not be more than 1 hour in the future")
        return None
    return moment


def optional_time(message: Any, field: str, found: ViolationCollector, *, path: str = "") -> datetime | None:
    """The one reading of a request's optional timestamp: None when unset, else checked like
    :func:`checked_time` (a violation at ``path``, default the field's name)."""
    return checked_time(getattr(message, field), path or field, found) if message.HasField(field) else None


def feedback_filter(request: feedback_service_pb2.ListFeedbackRequest) -> FeedbackFilter:
    found = ViolationCollector()
    source = enum_member(Source, request.source)
    if source is None:
        found.add("source", f"unknown source {request.source}")
    start_time, end_time = optional_time(request, "start_time", found), optional_time(request, "end_time", found)
    found.raise_if_any()
    return FeedbackFilter(
        project=request.project,
        trace_id=request.trace_id,
        model=request.model,
        model_version=request.model_version,
        key=request.key,
        source=None if source is Source.UNSPECIFIED else source,
        author=request.author,
        start_time=start_time,
        end_time=end_time,
    )
