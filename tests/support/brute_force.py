"""Aggregates recomputed the slow, obvious way from feedback read back through the API, to compare with
what StreamAggregates says. Independent of the service's aggregation code except the bucket edges."""

from __future__ import annotations

import bisect
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from feedback_proto.v1 import aggregates_pb2, feedback_pb2
from feedback_service.domain.evaluation.statistics import HISTOGRAM_EDGES

GroupTuple = tuple[str, str, str, int]  # model, model_version, key, source


@dataclass
class Expected:
    count: int = 0
    up: int = 0
    down: int = 0
    scores: list[float] = field(default_factory=list)
    labels: Counter[str] = field(default_factory=Counter)
    comments: int = 0
    corrections: int = 0
    authors: set[str] = field(default_factory=set)


def expected_groups(current: Iterable[feedback_pb2.Feedback]) -> dict[GroupTuple, Expected]:
    groups: dict[GroupTuple, Expected] = defaultdict(Expected)
    for feedback in current:
        group = groups[(feedback.model, feedback.model_version, feedback.key, int(feedback.source))]
        group.count += 1
        kind = feedback.WhichOneof("value")
        if kind == "thumb":
            group.up += feedback.thumb == feedback_pb2.THUMB_UP
            group.down += feedback.thumb == feedback_pb2.THUMB_DOWN
        elif kind == "score":
            group.scores.append(feedback.score)
        elif kind == "label":
            group.labels[feedback.label] += 1
        group.comments += bool(feedback.comment)
        group.corrections += bool(feedback.correction)
        if feedback.author:
            group.authors.add(feedback.author)
    return dict(groups)


def authors_by_group(created: Iterable[feedback_pb2.Feedback]) -> dict[GroupTuple, set[str]]:
    """Non-empty authors per group of every feedback created, deleted or replaced since: distinct_authors
    is a sketch that never subtracts (see FeedbackStats.distinct_authors), so they all still count."""
    groups: dict[GroupTuple, set[str]] = defaultdict(set)
    for feedback in created:
        if feedback.author:
            groups[(feedback.model, feedback.model_version, feedback.key, int(feedback.source))].add(feedback.author)
    return dict(groups)


def wilson(up: int, votes: int) -> tuple[float, float]:
    if votes == 0:
        return 0.0, 0.0
    z = 1.959963984540054
    p = up / votes
    centre = (p + z * z / (2 * votes)) / (1 + z * z / votes)
    half = z * math.sqrt(p * (1 - p) / votes + z * z / (4 * votes * votes)) / (1 + z * z / votes)
    return max(0.0, centre - half), min(1.0, centre + half)


def assert_stats_match(
    stats: aggregates_pb2.FeedbackStats, expected: Expected, where: str, *, gone_authors: Iterable[str] = ()
) -> None:
    """``gone_authors``: authors of deleted or replaced feedback of the group, counted still (the sketch of
    distinct authors never subtracts; it is exact for the few authors of tests)."""
    assert stats.count == expected.count, where
    assert (stats.thumbs.up, stats.thumbs.down) == (expected.up, expected.down), where
    votes = expected.up + expected.down
    assert math.isclose(stats.thumbs.positive_rate, expected.up / votes if votes else 0.0), where
    lower, upper = wilson(expected.up, votes)
    assert math.isclose(stats.thumbs.wilson_lower, lower, abs_tol=1e-12), where
    assert math.isclose(stats.thumbs.wilson_upper, upper, abs_tol=1e-12), where
    scores = expected.scores
    assert stats.scores.count == len(scores), where
    if scores:
        assert math.isclose(stats.scores.mean, statistics.fmean(scores), rel_tol=1e-9, abs_tol=1e-9), where
        assert (stats.scores.min, stats.scores.max) == (min(scores), max(scores)), where
        if len(scores) > 1:
            assert math.isclose(stats.scores.stddev, statistics.stdev(scores), rel_tol=1e-7, abs_tol=1e-9), where
    histogram = [0] * (len(HISTOGRAM_EDGES) + 1)
    for score in scores:
        histogram[bisect.bisect_right(HISTOGRAM_EDGES, score)] += 1
    assert [bucket.count for bucket in stats.scores.histogram] == histogram, where
    assert dict(stats.label_counts) == dict(expected.labels), where
    assert (stats.comment_count, stats.correction_count) == (expected.comments, expected.corrections), where
    assert stats.distinct_authors == len(expected.authors | set(gone_authors)), where
