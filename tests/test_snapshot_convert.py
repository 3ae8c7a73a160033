"""The fast per-group path of a snapshot gives exactly what the plain one gave. No server needed.

``summarize_scores`` was fused into one pass with Dekker's product written out, and a group's
response is filled into a copy of a template instead of built from nested constructors. The
references below are the earlier code, kept verbatim: results must match bit for bit (signed zeros
included), and messages byte for byte.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from feedback_proto.v1 import aggregates_pb2, feedback_pb2, feedback_service_pb2
from feedback_service.api.convert import timestamp_of
from feedback_service.api.evaluation_convert import aggregate_response, stats_message
from feedback_service.domain.evaluation import statistics as stats
from feedback_service.domain.evaluation.aggregates import GroupCounts, GroupKey
from feedback_service.domain.evaluation.operations import FeedbackStats, GroupUpdate, stats_of
from feedback_service.domain.model import Source

# --- the earlier code, as it was -----------------------------------------------------------------


def reference_summarize_scores(score_counts: Mapping[float, int]) -> stats.ScoreSummary:
    groups = _checked_groups(score_counts)
    histogram = [0] * stats.HISTOGRAM_BUCKETS
    for value, count in groups:
        histogram[stats.histogram_bucket(value)] += count
    if not groups:
        return stats.ScoreSummary(count=0, mean=0.0, stddev=0.0, minimum=0.0, maximum=0.0, histogram=tuple(histogram))
    total = sum(count for _, count in groups)
    minimum = min(value for value, _ in groups)
    maximum = max(value for value, _ in groups)
    exponent = math.frexp(max(abs(minimum), abs(maximum)))[1]
    scaled = [(math.ldexp(value, -exponent), count) for value, count in groups]
    scaled_mean = _clamp(_mean(scaled, total), math.ldexp(minimum, -exponent), math.ldexp(maximum, -exponent))
    mean = math.ldexp(scaled_mean, exponent)
    stddev = _unscale(_sample_stddev(scaled, scaled_mean, total), exponent)
    return stats.ScoreSummary(
        count=total, mean=mean, stddev=stddev, minimum=minimum, maximum=maximum, histogram=tuple(histogram)
    )


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _checked_groups(score_counts: Mapping[float, int]) -> list[tuple[float, int]]:
    groups: list[tuple[float, int]] = []
    for value, count in score_counts.items():
        if not math.isfinite(value):
            raise ValueError(f"scores must be finite, got {value!r}")
        if count < 0:
            raise ValueError(f"counts must not be negative, got {count} for score {value!r}")
        if count > 0:
            groups.append((float(value), count))
    return groups


def _two_product(a: float, b: float) -> tuple[float, float]:
    p = a * b
    a_high, a_low = _split(a)
    b_high, b_low = _split(b)
    e = ((a_high * b_high - p) + a_high * b_low + a_low * b_high) + a_low * b_low
    return p, e


def _split(a: float) -> tuple[float, float]:
    c = 134217729.0 * a
    high = c - (c - a)
    return high, a - high


def _exact_terms(groups: Iterable[tuple[float, int]]) -> list[float]:
    terms: list[float] = []
    for value, count in groups:
        terms.extend(_two_product(value, float(count)))
    return terms


def _mean(scaled: list[tuple[float, int]], total: int) -> float:
    return math.fsum(_exact_terms(scaled)) / total


def _sample_stddev(scaled: list[tuple[float, int]], mean: float, total: int) -> float:
    if total < 2:
        return 0.0
    deviations = [(value - mean, count) for value, count in scaled]
    squares = math.fsum(count * deviation * deviation for deviation, count in deviations)
    drift = math.fsum(_exact_terms(deviations))
    sum_of_squares = max(squares - drift * drift / total, 0.0)
    return math.sqrt(sum_of_squares / (total - 1))


def _unscale(value: float, exponent: int) -> float:
    try:
        return math.ldexp(value, exponent)
    except OverflowError:
        return math.inf


_BUCKET_BOUNDS = list(zip((-math.inf, *stats.HISTOGRAM_EDGES), (*stats.HISTOGRAM_EDGES, math.inf), strict=True))


def reference_stats_message(stats: FeedbackStats) -> aggregates_pb2.FeedbackStats:
    scores = stats.scores
    return aggregates_pb2.FeedbackStats(
        count=stats.count,
        thumbs=aggregates_pb2.ThumbStats(
            up=stats.thumbs.up,
            down=stats.thumbs.down,
            positive_rate=stats.thumbs.positive_rate,
            wilson_lower=stats.thumbs.wilson_lower,
            wilson_upper=stats.thumbs.wilson_upper,
        ),
        scores=aggregates_pb2.ScoreStats(
            count=scores.count,
            mean=scores.mean,
            stddev=scores.stddev,
            min=scores.minimum,
            max=scores.maximum,
            histogram=[
                aggregates_pb2.HistogramBucket(lower=lower, upper=upper, count=count)
                for (lower, upper), count in zip(_BUCKET_BOUNDS, scores.histogram, strict=True)
            ],
        ),
        label_counts=dict(stats.labels),
        comment_count=stats.comments,
        correction_count=stats.corrections,
        distinct_authors=stats.distinct_authors,
    )


def reference_aggregate_response(update: GroupUpdate) -> feedback_service_pb2.StreamAggregatesResponse:
    key = update.key
    key_message = aggregates_pb2.GroupKey(
        model=key.model,
        model_version=key.model_version,
        key=key.key,
        source=feedback_pb2.Source.ValueType(int(key.source) if key.source is not None else 0),
        bucket_start=timestamp_of(key.bucket_start),
    )
    group = aggregates_pb2.AggregateGroup(key=key_message, stats=reference_stats_message(update.stats))
    return feedback_service_pb2.StreamAggregatesResponse(group=group)


# --- helpers -------------------------------------------------------------------------------------


def bits(value: float) -> bytes:
    """The float's bytes: tells -0.0 from 0.0, unlike ==."""
    return struct.pack("<d", value)


def assert_same_summary(summary: stats.ScoreSummary, expected: stats.ScoreSummary) -> None:
    assert (summary.count, summary.histogram) == (expected.count, expected.histogram)
    for name in ("mean", "stddev", "minimum", "maximum"):
        assert bits(getattr(summary, name)) == bits(getattr(expected, name)), name


def random_groups(draw: random.Random, count: int) -> list[GroupCounts]:
    """Groups like a snapshot's: thumbs, up to six labels, up to five score values, some empty."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    scales = ([1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 0.25, 0.5, 0.75, 1.0], [draw.uniform(-1e3, 1e3) for _ in range(5)])
    groups: list[GroupCounts] = []
    for index in range(count):
        values = draw.choice(scales)
        groups.append(
            GroupCounts(
                key=GroupKey(
                    model=draw.choice(["", "model-3"]),
                    model_version=draw.choice(["", "v2"]),
                    key=draw.choice(["", "thumbs", "helpfulness", "topic"]),
                    source=draw.choice([None, Source.USER, Source.REVIEWER]),
                    bucket_start=None if index % 7 == 0 else start + timedelta(minutes=draw.randrange(600_000)),
                ),
                count=draw.randrange(5000),
                thumbs_up=draw.randrange(3000) if draw.random() < 0.6 else 0,
                thumbs_down=draw.randrange(1000) if draw.random() < 0.6 else 0,
                comments=draw.randrange(300),
                corrections=draw.randrange(100),
                labels={f"label-{n}": draw.randrange(1, 500) for n in range(draw.choice([0, 0, 3, 6]))},
                scores={value: draw.randrange(0, 800) for value in values if draw.random() < 0.8},
                distinct_authors=draw.randrange(2000),
            )
        )
    return groups


# --- summarize_scores ----------------------------------------------------------------------------

any_score = st.floats(allow_nan=False, allow_infinity=False)
ratings = st.sampled_from([1.0, 2.0, 3.0, 4.0, 5.0, 0.0, -0.0, 0.5, 0.1, 10.0])


@given(st.dictionaries(st.one_of(any_score, ratings), st.integers(min_value=0, max_value=2**40), max_size=12))
@example({1.7e308: 1, -1.7e308: 1})  # stddev beyond the float range
@example({-0.0: 3})
@example({-0.0: 2, 1.0: 0})
@example({-1.0: 3, 1.0: 3})  # the sum cancels to zero
@example({math.ulp(0.0): 1, 1.7976931348623157e308: 5})
@example({1e9 + k * 1e-6: k + 1 for k in range(10)})
@example({2: 3, 5: 1})  # int scores
def test_summary_is_bit_for_bit_the_earlier_one(score_counts: dict[float, int]) -> None:
    assert_same_summary(stats.summarize_scores(score_counts), reference_summarize_scores(score_counts))


def test_summary_of_realistic_groups_is_bit_for_bit_the_earlier_one() -> None:
    for group in random_groups(random.Random(20240101), 3000):
        assert_same_summary(stats.summarize_scores(group.scores), reference_summarize_scores(group.scores))


@pytest.mark.parametrize(
    "bad", [{1.0: 2, math.nan: 1}, {0.5: -1, math.inf: 1}, {math.inf: -1}, {2.0: 1, 3.0: -4}, {-math.inf: 0}]
)
def test_bad_input_is_refused_with_the_earlier_error(bad: dict[float, int]) -> None:
    with pytest.raises(ValueError, match=r"finite|negative") as expected:
        reference_summarize_scores(bad)
    with pytest.raises(ValueError, match=r"finite|negative") as raised:
        stats.summarize_scores(bad)
    assert str(raised.value) == str(expected.value)


# --- messages ------------------------------------------------------------------------------------


def test_group_responses_are_byte_for_byte_the_earlier_ones() -> None:
    for group in random_groups(random.Random(7), 2000):
        update = GroupUpdate(group.key, stats_of(group))
        response, expected = aggregate_response(update), reference_aggregate_response(update)
        assert response == expected
        assert response.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)


def test_stats_messages_are_the_earlier_ones_and_do_not_share_state() -> None:
    groups = random_groups(random.Random(11), 500)
    messages = [stats_message(stats_of(group)) for group in groups]
    # Built one after the other from the same template: none carries anything of another group.
    for group, message in zip(groups, messages, strict=True):
        assert message == reference_stats_message(stats_of(group))
    empty = stats_message(stats_of(GroupCounts(key=GroupKey())))
    assert empty == reference_stats_message(stats_of(GroupCounts(key=GroupKey())))
    assert [bucket.count for bucket in empty.scores.histogram] == [0] * stats.HISTOGRAM_BUCKETS
    assert empty.HasField("thumbs")
    assert empty.HasField("scores")
