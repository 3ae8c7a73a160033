"""feedback.v1 messages <-> domain objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from feedback_proto.v1 import feedback_pb2, feedback_service_pb2
from feedback_service.domain.errors import FieldViolation, InvalidArgumentError
from feedback_service.domain.listing import FeedbackFilter, micros_since_epoch
from feedback_service.domain.model import Feedback, FeedbackInput, Source, ValueKind
from feedback_service.domain.validation import ViolationCollector

_VALUE_KINDS = {None: ValueKind.NONE, "thumb": ValueKind.THUMB, "score": ValueKind.SCORE, "label": ValueKind.LABEL}


def feedback_input(message: feedback_pb2.Feedback, *, project: str | None = None) -> FeedbackInput:
    """What the caller sent; output-only fields (times, revision) are ignored.

    ``project`` replaces the message's project (the one the caller's credential allows).
    """
    return FeedbackInput(
        project=message.project if project is None else project,
        feedback_id=message.feedback_id,
        trace_id=message.trace_id,
        span_id=message.span_id,
        session_id=message.session_id,
        model=message.model,
        model_version=message.model_version,
        key=message.key,
        value_kind=_VALUE_KINDS[message.WhichOneof("value")],
        thumb=message.thumb,
        score=message.score,
        label=message.label,
        comment=message.comment,
        correction=message.correction,
        source=message.source,
        author=message.author,
        metadata=dict(message.metadata),
    )


def timestamp_of(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    micros = micros_since_epoch(moment)
    return Timestamp(seconds=micros // 1_000_000, nanos=(micros % 1_000_000) * 1000)


def feedback_message(feedback: Feedback) -> feedback_pb2.Feedback:
    message = feedback_pb2.Feedback(
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
        metadata=dict(feedback.metadata),
        create_time=timestamp_of(feedback.create_time),
        update_time=timestamp_of(feedback.update_time),
        revision=feedback.revision,
        created_by=feedback.created_by,
        updated_by=feedback.updated_by,
    )
    value = feedback.value
    if value.kind is ValueKind.THUMB:
        message.thumb = feedback_pb2.Thumb.ValueType(int(value.thumb))
    elif value.kind is ValueKind.SCORE:
        message.score = value.score
    elif value.kind is ValueKind.LABEL:
        message.label = value.label
    return message


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


def _time(stamp: Timestamp, name: str) -> datetime | None:
    found = ViolationCollector()
    moment = checked_time(stamp, name, found)
    found.raise_if_any()
    return moment


def feedback_filter(request: feedback_service_pb2.ListFeedbackRequest) -> FeedbackFilter:
    source = int(request.source)
    if source not in Source.__members__.values():
        raise InvalidArgumentError([FieldViolation("source", f"unknown source {source}")])
    return FeedbackFilter(
        project=request.project,
        trace_id=request.trace_id,
        model=request.model,
        model_version=request.model_version,
        key=request.key,
        source=None if source == Source.UNSPECIFIED else Source(source),
        author=request.author,
        start_time=_time(request.start_time, "start_time") if request.HasField("start_time") else None,
        end_time=_time(request.end_time, "end_time") if request.HasField("end_time") else None,
    )
