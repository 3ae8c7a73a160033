"""Aggregates: which feedback, how it is grouped, and the exact counts a group holds."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from feedback_service.domain.model import Source
from feedback_service.domain.validation import ViolationCollector, check_project, check_time_range


class GroupField(enum.Enum):
    MODEL = "model"
    MODEL_VERSION = "model_version"
    KEY = "key"
    SOURCE = "source"


class TimeBucket(enum.Enum):
    NONE = "none"
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"


@dataclass(frozen=True, slots=True)
class FeedbackScope:
    """Which feedback: a project and optional allow-lists (empty = any) and a create_time range."""

    project: str
    models: tuple[str, ...] = ()
    model_versions: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    sources: tuple[Source, ...] = ()
    start_time: datetime | None = None
    end_time: datetime | None = None

    def digest(self) -> str:
        """Identifies the scope, so a cursor cannot be replayed under another one."""
        parts = [
            self.project,
            sorted(self.models),
            sorted(self.model_versions),
            sorted(self.keys),
            sorted(int(s) for s in self.sources),
            self.start_time.isoformat() if self.start_time else "",
            self.end_time.isoformat() if self.end_time else "",
        ]
        return hashlib.blake2b(json.dumps(parts).encode(), digest_size=8).hexdigest()


def check_scope(scope: FeedbackScope, found: ViolationCollector, *, whole_minutes: bool) -> None:
    check_project(scope.project, found, "filter.project")
    check_time_range(
        scope.start_time,
        scope.end_time,
        found,
        name="filter.end_time",
        whole_minutes=whole_minutes,
        names=("filter.start_time", "filter.end_time"),
    )


@dataclass(frozen=True, slots=True)
class AggregateQuery:
    scope: FeedbackScope
    group_by: tuple[GroupField, ...] = ()
    bucket: TimeBucket = TimeBucket.NONE


@dataclass(frozen=True, slots=True)
class GroupKey:
    """Values of the grouped dimensions; the others are empty / None."""

    model: str = ""
    model_version: str = ""
    key: str = ""
    source: Source | None = None
    bucket_start: datetime | None = None


@dataclass(frozen=True, slots=True)
class GroupCounts:
    """The exact counts behind a group's statistics."""

    key: GroupKey
    count: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0
    comments: int = 0
    corrections: int = 0
    labels: Mapping[str, int] = field(default_factory=dict)
    scores: Mapping[float, int] = field(default_factory=dict)
    distinct_authors: int = 0
