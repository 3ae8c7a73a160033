"""Aggregate, export and comparison messages <-> domain objects."""

from __future__ import annotations

import math

from feedback_proto.v1 import aggregates_pb2, feedback_pb2, feedback_service_pb2
from feedback_service.api.convert import optional_time, timestamp_of
from feedback_service.domain.evaluation.aggregates import (
    AggregateQuery,
    FeedbackScope,
    GroupField,
    GroupKey,
    TimeBucket,
)
from feedback_service.domain.evaluation.operations import FeedbackStats, KeyComparison, sources_of
from feedback_service.domain.evaluation.statistics import HISTOGRAM_EDGES
from feedback_service.domain.ports import ExportFilter
from feedback_service.domain.validation import ViolationCollector

_GROUP_FIELDS = {
    aggregates_pb2.GROUP_BY_FIELD_MODEL: GroupField.MODEL,
    aggregates_pb2.GROUP_BY_FIELD_MODEL_VERSION: GroupField.MODEL_VERSION,
    aggregates_pb2.GROUP_BY_FIELD_KEY: GroupField.KEY,
    aggregates_pb2.GROUP_BY_FIELD_SOURCE: GroupField.SOURCE,
}
_BUCKETS = {
    aggregates_pb2.TIME_BUCKET_UNSPECIFIED: TimeBucket.NONE,
    aggregates_pb2.TIME_BUCKET_MINUTE: TimeBucket.MINUTE,
    aggregates_pb2.TIME_BUCKET_HOUR: TimeBucket.HOUR,
    aggregates_pb2.TIME_BUCKET_DAY: TimeBucket.DAY,
}
_METRICS = {
    "": aggregates_pb2.COMPARED_METRIC_UNSPECIFIED,
    "positive_rate": aggregates_pb2.COMPARED_METRIC_POSITIVE_RATE,
    "score_mean": aggregates_pb2.COMPARED_METRIC_SCORE_MEAN,
}
_BUCKET_BOUNDS = list(zip((-math.inf, *HISTOGRAM_EDGES), (*HISTOGRAM_EDGES, math.inf), strict=True))


def _scope(
    message: aggregates_pb2.AggregateFilter, found: ViolationCollector, prefix: str = "filter."
) -> FeedbackScope:
    return FeedbackScope(
        project=message.project,
        models=tuple(message.models),
        model_versions=tuple(message.model_versions),
        keys=tuple(message.keys),
        sources=sources_of([int(s) for s in message.sources], found, f"{prefix}sources"),
        start_time=optional_time(message, "start_time", found, path=f"{prefix}start_time"),
        end_time=optional_time(message, "end_time", found, path=f"{prefix}end_time"),
    )


def aggregate_query(request: feedback_service_pb2.StreamAggregatesRequest) -> AggregateQuery:
    found = ViolationCollector()
    scope = _scope(request.filter, found)
    group_by: list[GroupField] = []
    for number in request.group_by:
        if number in _GROUP_FIELDS:
            group_by.append(_GROUP_FIELDS[number])
        else:
            found.add("group_by", f"unknown dimension {number}: use model, model_version, key or source")
    if request.time_bucket not in _BUCKETS:
        found.add("time_bucket", f"unknown time bucket {request.time_bucket}: use minute, hour or day")
    found.raise_if_any()
    return AggregateQuery(scope=scope, group_by=tuple(group_by), bucket=_BUCKETS[request.time_bucket])


def export_filter(request: feedback_service_pb2.ExportFeedbackRequest) -> ExportFilter:
    found = ViolationCollector()
    scope = _scope(request.filter, found)
    found.raise_if_any()
    return ExportFilter(
        scope=scope,
        only_with_correction=request.only_with_correction,
        only_with_comment=request.only_with_comment,
    )


def compare_scope(request: feedback_service_pb2.CompareVersionsRequest) -> FeedbackScope:
    found = ViolationCollector()
    scope = FeedbackScope(
        project=request.project,
        keys=tuple(request.keys),
        sources=sources_of([int(s) for s in request.sources], found, "sources"),
        start_time=optional_time(request, "start_time", found),
        end_time=optional_time(request, "end_time", found),
    )
    found.raise_if_any()
    return scope


def group_key_message(key: GroupKey) -> aggregates_pb2.GroupKey:
    return aggregates_pb2.GroupKey(
        model=key.model,
        model_version=key.model_version,
        key=key.key,
        source=feedback_pb2.Source.ValueType(int(key.source) if key.source is not None else 0),
        bucket_start=timestamp_of(key.bucket_start),
    )


def stats_message(stats: FeedbackStats) -> aggregates_pb2.FeedbackStats:
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


def comparison_message(comparison: KeyComparison) -> aggregates_pb2.KeyComparison:
    result = comparison.result
    return aggregates_pb2.KeyComparison(
        key=comparison.key,
        a=stats_message(comparison.a),
        b=stats_message(comparison.b),
        metric=_METRICS[comparison.metric],
        difference=result.difference if result else 0.0,
        test=result.test if result else "",
        statistic=result.statistic if result else 0.0,
        p_value=result.p_value if result else 1.0,
        sample_size_a=comparison.sample_size_a,
        sample_size_b=comparison.sample_size_b,
    )
