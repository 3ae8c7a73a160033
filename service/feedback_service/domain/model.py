"""Feedback as the service understands it, independent of gRPC and of ClickHouse."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

EnumT = TypeVar("EnumT", bound=enum.IntEnum)


def enum_member(kind: type[EnumT], number: int) -> EnumT | None:
    """The member of ``kind`` numbered ``number``, or None for a number it does not know (proto enums are
    open: a newer client may send one). The one way enum numbers from requests are checked."""
    try:
        return kind(number)
    except ValueError:
        return None


class Thumb(enum.IntEnum):
    """Numbers match feedback.v1.Thumb."""

    UNSPECIFIED = 0
    UP = 1
    DOWN = 2


class Source(enum.IntEnum):
    """Numbers match feedback.v1.Source."""

    UNSPECIFIED = 0
    USER = 1
    REVIEWER = 2
    AUTOMATED = 3


class ValueKind(enum.IntEnum):
    """Which member of the value oneof is set."""

    NONE = 0
    THUMB = 1
    SCORE = 2
    LABEL = 3


@dataclass(frozen=True, slots=True)
class FeedbackValue:
    """The judgement: at most one of thumb, score, label (``kind`` says which)."""

    kind: ValueKind = ValueKind.NONE
    thumb: Thumb = Thumb.UNSPECIFIED
    score: float = 0.0
    label: str = ""

    @classmethod
    def of_thumb(cls, thumb: Thumb) -> FeedbackValue:
        return cls(kind=ValueKind.THUMB, thumb=thumb)

    @classmethod
    def of_score(cls, score: float) -> FeedbackValue:
        return cls(kind=ValueKind.SCORE, score=score)

    @classmethod
    def of_label(cls, label: str) -> FeedbackValue:
        return cls(kind=ValueKind.LABEL, label=label)


NO_VALUE = FeedbackValue()
# Values are immutable: one instance per thumb serves all feedback (reads and creates share them).
THUMB_VALUES = {thumb: FeedbackValue(ValueKind.THUMB, thumb) for thumb in Thumb}


@dataclass(frozen=True, slots=True)
class FeedbackInput:
    """Feedback as a caller sent it, before validation (enum numbers may be unknown)."""

    project: str = ""
    feedback_id: str = ""
    trace_id: str = ""
    span_id: str = ""
    session_id: str = ""
    model: str = ""
    model_version: str = ""
    key: str = ""
    value_kind: ValueKind = ValueKind.NONE
    thumb: int = 0
    score: float = 0.0
    label: str = ""
    comment: str = ""
    correction: str = ""
    source: int = 0
    author: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Feedback:
    """Validated, normalised feedback; the stored form once ``revision`` > 0."""

    project: str
    feedback_id: str
    trace_id: str
    key: str
    value: FeedbackValue = NO_VALUE
    span_id: str = ""
    session_id: str = ""
    model: str = ""
    model_version: str = ""
    comment: str = ""
    correction: str = ""
    source: Source = Source.UNSPECIFIED
    author: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    create_time: datetime | None = None
    update_time: datetime | None = None
    revision: int = 0
    created_by: str = ""  # audit: key id of the credential that created it
    updated_by: str = ""  # audit: key id of the credential that wrote this revision
