"""Aggregates read from feedback_rollups (minute, hour and day rows; migration 0012) equal a brute-force
recomputation over ``feedback`` for ranges and buckets that cross hour and day boundaries, with old feedback
updated, deleted and voted over after it was counted in day rows; and the distinct-author sketch is exact for
small sets and within its stated error for large ones."""

from __future__ import annotations

import math
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedback_service.domain.errors import InvalidArgumentError, NotFoundError
from feedback_service.domain.evaluation.aggregates import (
    AggregateQuery,
    FeedbackScope,
    GroupCounts,
    GroupField,
    GroupKey,
    TimeBucket,
)
from feedback_service.domain.feedback.operations import FeedbackOperations
from feedback_service.domain.model import Feedback, FeedbackInput, FeedbackValue, Source, Thumb, ValueKind
from feedback_service.store.derived_repair import CheckScope
from feedback_service.store.deriver import insert_changes
from feedback_service.store.engine import ClickHouseEngine
from feedback_service.store.feedback_store import ClickHouseFeedbackStore, insert_feedback_rows, rollup_segments
from feedback_service.store.rows import RowBlock, to_row
from feedback_service.store.write_batch import read_latest

DAY = datetime(2026, 3, 10, tzinfo=UTC)  # a past day: its feedback is "old", counted in day rows
# Create times on both sides of hour and day boundaries.
MOMENTS = [
    DAY - timedelta(days=3, hours=5),
    DAY - timedelta(minutes=1),
    DAY - timedelta(seconds=1),
    DAY,
    DAY + timedelta(seconds=59),
    DAY + timedelta(minutes=59, seconds=30),
    DAY + timedelta(hours=1),
    DAY + timedelta(hours=1, minutes=1),
    DAY + timedelta(hours=13, minutes=37, seconds=12),
    DAY + timedelta(hours=23, minutes=59, seconds=59),
    DAY + timedelta(days=1),
    DAY + timedelta(days=1, hours=2, minutes=30),
    DAY + timedelta(days=2, hours=23),
]
# Range bounds (whole minutes, as the API requires), around the same boundaries; None: unbounded.
BOUNDS = [
    None,
    DAY - timedelta(days=2),
    DAY - timedelta(minutes=1),
    DAY,
    DAY + timedelta(minutes=1),
    DAY + timedelta(hours=1),
    DAY + timedelta(hours=1, minutes=1),
    DAY + timedelta(hours=13, minutes=37),
    DAY + timedelta(hours=23, minutes=59),
    DAY + timedelta(days=1),
    DAY + timedelta(days=1, hours=3),
    DAY + timedelta(days=3),
]
ALL_DIMENSIONS = (GroupField.MODEL, GroupField.MODEL_VERSION, GroupField.KEY, GroupField.SOURCE)


# ---- the decomposition of a range -----------------------------------------------------------------------


def test_a_range_reads_whole_days_from_day_rows_and_only_its_edges_from_finer_rows() -> None:
    start = datetime(2026, 1, 1, 22, 15, tzinfo=UTC)
    end = datetime(2026, 3, 5, 1, 30, tzinfo=UTC)
    segments = rollup_segments(start, end, ("day", "hour", "minute"))
    assert segments == [
        ("minute", start, datetime(2026, 1, 1, 23, tzinfo=UTC)),
        ("hour", datetime(2026, 1, 1, 23, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)),
        ("day", datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC)),
        ("hour", datetime(2026, 3, 5, tzinfo=UTC), datetime(2026, 3, 5, 1, tzinfo=UTC)),
        ("minute", datetime(2026, 3, 5, 1, tzinfo=UTC), end),
    ]
    assert rollup_segments(None, None, ("day", "hour", "minute")) == [("day", None, None)]
    assert rollup_segments(start, None, ("hour", "minute")) == [
        ("minute", start, datetime(2026, 1, 1, 23, tzinfo=UTC)),
        ("hour", datetime(2026, 1, 1, 23, tzinfo=UTC), None),
    ]
    inside_an_hour = rollup_segments(start, start + timedelta(minutes=5), ("day", "hour", "minute"))
    assert inside_an_hour == [("minute", start, start + timedelta(minutes=5))]


@given(
    start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
    minutes=st.integers(min_value=1, max_value=3 * 366 * 1440),
)
def test_the_segments_cover_a_range_exactly_with_few_fine_buckets(start: datetime, minutes: int) -> None:
    start = start.replace(second=0, microsecond=0)
    end = start + timedelta(minutes=minutes)
    segments = rollup_segments(start, end, ("day", "hour", "minute"))
    covered = start
    fine = 0
    widths = {"day": timedelta(days=1), "hour": timedelta(hours=1), "minute": timedelta(minutes=1)}
    for grain, low, high in segments:
        assert low == covered  # contiguous, in order, no overlap
        assert low is not None
        assert high is not None
        assert low < high
        assert (high - low) % widths[grain] == timedelta(0)
        fine += (high - low) // widths[grain] if grain != "day" else 0
        covered = high
    assert covered == end
    assert fine <= 2 * (23 + 59)


# ---- the store against brute force ------------------------------------------------------------------------


def _stored(project: str, index: int, moment: datetime, fields: dict[str, Any]) -> list[Any]:
    value = fields["value"]
    feedback = Feedback(
        project,
        f"old-{index}",
        fields["trace_id"],
        fields["key"],
        value,
        model="bot",
        model_version=fields["model_version"],
        comment=fields["comment"],
        correction=fields["correction"],
        source=fields["source"],
        author=fields["author"],
        create_time=moment,
        update_time=moment,
        revision=1,
    )
    return to_row(feedback, fingerprint="")


def _brute_force(
    current: Sequence[Feedback], revisions: Sequence[tuple[Any, ...]], query: AggregateQuery
) -> dict[tuple[Any, ...], GroupCounts]:
    """Groups of the live feedback in the range, and distinct authors of every stored revision in it (the
    sketch never subtracts), with the bucket start of its create time."""
    scope = query.scope

    def inside(moment: datetime) -> bool:
        return (scope.start_time is None or moment >= scope.start_time) and (
            scope.end_time is None or moment < scope.end_time
        )

    def bucket_of(moment: datetime) -> datetime | None:
        if query.bucket is TimeBucket.NONE:
            return None
        if query.bucket is TimeBucket.MINUTE:
            return moment.replace(second=0, microsecond=0)
        if query.bucket is TimeBucket.HOUR:
            return moment.replace(minute=0, second=0, microsecond=0)
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)

    counts: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        lambda: {
            "count": 0,
            "up": 0,
            "down": 0,
            "comments": 0,
            "corrections": 0,
            "labels": Counter(),
            "scores": Counter(),
        }
    )
    for feedback in current:
        assert feedback.create_time is not None
        minute = feedback.create_time.replace(second=0, microsecond=0)
        if not inside(minute):
            continue
        group = (feedback.model, feedback.model_version, feedback.key, feedback.source, bucket_of(minute))
        entry = counts[group]
        entry["count"] += 1
        entry["up"] += feedback.value.kind is ValueKind.THUMB and feedback.value.thumb is Thumb.UP
        entry["down"] += feedback.value.kind is ValueKind.THUMB and feedback.value.thumb is Thumb.DOWN
        entry["comments"] += bool(feedback.comment)
        entry["corrections"] += bool(feedback.correction)
        if feedback.value.kind is ValueKind.LABEL:
            entry["labels"][feedback.value.label] += 1
        if feedback.value.kind is ValueKind.SCORE:
            entry["scores"][feedback.value.score] += 1
    authors: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for model, version, key, source, author, create_time in revisions:
        minute = create_time.replace(second=0, microsecond=0, tzinfo=UTC)
        if author and inside(minute):
            authors[(model, version, key, Source(source), bucket_of(minute))].add(author)
    return {
        group: GroupCounts(
            key=GroupKey(),  # compared field by field below
            count=entry["count"],
            thumbs_up=entry["up"],
            thumbs_down=entry["down"],
            comments=entry["comments"],
            corrections=entry["corrections"],
            labels=dict(entry["labels"]),
            scores=dict(entry["scores"]),
            distinct_authors=len(authors[group]),
        )
        for group, entry in counts.items()
        if entry["count"] > 0
    }


def _as_key(counts: GroupCounts) -> tuple[Any, ...]:
    key = counts.key
    return (key.model, key.model_version, key.key, key.source, key.bucket_start)


def _fields(counts: GroupCounts) -> tuple[Any, ...]:
    return (
        counts.count,
        counts.thumbs_up,
        counts.thumbs_down,
        counts.comments,
        counts.corrections,
        dict(counts.labels),
        dict(counts.scores),
        counts.distinct_authors,
    )


_values = st.one_of(
    st.sampled_from([Thumb.UP, Thumb.DOWN]).map(FeedbackValue.of_thumb),
    st.sampled_from([0.0, 1.0, 4.5, -1.0]).map(FeedbackValue.of_score),
    st.sampled_from(["billing", "spam"]).map(FeedbackValue.of_label),
)
_old_feedback = st.fixed_dictionaries(
    {
        "moment": st.sampled_from(MOMENTS),
        "model_version": st.sampled_from(["v1", "v2"]),
        "key": st.just("thumbs"),
        "trace_id": st.sampled_from(["t1", "t2"]),
        "source": st.sampled_from([Source.USER, Source.REVIEWER]),
        "author": st.sampled_from(["ann", "bob", "cat", ""]),
        "value": _values,
        "comment": st.sampled_from(["", "why"]),
        "correction": st.sampled_from(["", "fix"]),
    }
)
_later = st.one_of(
    st.tuples(st.just("update"), st.integers(0, 30), st.sampled_from([1.0, 2.0, 5.0])),
    st.tuples(st.just("comment"), st.integers(0, 30), st.sampled_from(["", "changed"])),
    st.tuples(st.just("delete"), st.integers(0, 30)),
    # A new vote by the same end user on the same trace and key: the old vote (old create time) is deleted.
    st.tuples(st.just("vote"), st.sampled_from(["t1", "t2"]), st.sampled_from(["ann", "bob"])),
)
_queries = st.lists(
    st.tuples(
        st.sampled_from(BOUNDS),
        st.sampled_from(BOUNDS),
        st.sampled_from([TimeBucket.NONE, TimeBucket.DAY, TimeBucket.HOUR, TimeBucket.MINUTE]),
    ),
    min_size=3,
    max_size=6,
)


@pytest.mark.parametrize("engine", ["embedded"], indirect=True)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(old=st.lists(_old_feedback, min_size=1, max_size=20), later=st.lists(_later, max_size=8), queries=_queries)
async def test_ranges_and_buckets_across_day_and_hour_boundaries_equal_brute_force(
    engine: ClickHouseEngine,
    old: list[dict[str, Any]],
    later: list[tuple[Any, ...]],
    queries: list[tuple[datetime | None, datetime | None, TimeBucket]],
) -> None:
    project = f"rollup-{uuid.uuid4().hex[:10]}"
    # Old feedback straight through storage, as an older release (or the benchmark loader) stored it: counted in
    # minute, hour and day rows before anything below touches it. One vote per user holds in storage.
    rows: list[list[Any]] = []
    votes: set[tuple[str, str, str]] = set()
    for index, drawn in enumerate(old):
        fields = dict(drawn)
        if fields["source"] is Source.USER and fields["author"]:
            ballot = (fields["trace_id"], fields["key"], fields["author"])
            if ballot in votes:
                fields["source"] = Source.REVIEWER
            votes.add(ballot)
        rows.append(_stored(project, index, fields["moment"], fields))

    def load(client: Any) -> None:
        insert_feedback_rows(client, RowBlock.of_rows(rows))
        insert_changes(client, RowBlock.of_rows(rows))

    await engine.run(load)
    store = ClickHouseFeedbackStore(engine)
    store.start()
    operations = FeedbackOperations(store)
    try:
        for step in later:
            target = f"old-{step[1] % len(old)}" if step[0] != "vote" else ""
            try:
                if step[0] == "update":
                    draft = FeedbackInput(
                        project=project, feedback_id=target, value_kind=ValueKind.SCORE, score=step[2]
                    )
                    await operations.update(draft, ["score"])
                elif step[0] == "comment":
                    await operations.update(
                        FeedbackInput(project=project, feedback_id=target, comment=step[2]), ["comment"]
                    )
                elif step[0] == "delete":
                    await operations.delete(project, target)
                else:
                    draft = FeedbackInput(
                        project=project,
                        trace_id=step[1],
                        key="thumbs",
                        value_kind=ValueKind.THUMB,
                        thumb=int(Thumb.DOWN),
                        source=int(Source.USER),
                        author=step[2],
                        model="bot",
                        model_version="v1",
                    )
                    await operations.create(draft)
            except (NotFoundError, InvalidArgumentError):
                pass  # deleted feedback cannot be changed again; an update that would empty feedback is refused

        def read(client: Any) -> tuple[list[Feedback], list[tuple[Any, ...]]]:
            ids = [
                str(r[0])
                for r in client.query(
                    "SELECT DISTINCT feedback_id FROM feedback WHERE project = {p:String}", parameters={"p": project}
                ).result_rows
            ]
            current = [row.feedback for row in read_latest(client, project=project, ids=ids) if not row.deleted]
            revisions = client.query(
                "SELECT model, model_version, key, CAST(source, 'Int8'), author, create_time FROM feedback "
                "WHERE project = {p:String}",
                parameters={"p": project},
            ).result_rows
            return current, revisions

        for start, end, bucket in queries:
            if start is not None and end is not None and start >= end:
                continue
            current, revisions = await engine.run(read)
            scope = FeedbackScope(project=project, start_time=start, end_time=end)
            query = AggregateQuery(scope, ALL_DIMENSIONS, bucket)
            got = {_as_key(c): _fields(c) for c in await store.aggregate(query)}
            want = {key: _fields(c) for key, c in _brute_force(current, revisions, query).items()}
            assert got == want, f"{start} .. {end} by {bucket}"
        report = await store.check_derived(CheckScope(project=project), apply=False)
        assert report.consistent, report.by_table()
    finally:
        await store.close()


# ---- the distinct-author sketch -------------------------------------------------------------------------

# What the proto states for distinct_authors (uniqCombined64 with 2^14 cells): exact up to 511 distinct authors,
# ~0.8% standard error above; 4 standard errors bound a single estimate with room to spare.
EXACT_UP_TO = 511
STANDARD_ERROR = 0.0081


@pytest.mark.parametrize("engine", ["embedded"], indirect=True)
@pytest.mark.parametrize("authors", [1, 37, EXACT_UP_TO, 20_000])
async def test_distinct_authors_are_exact_for_small_sets_and_within_the_stated_error_above(
    engine: ClickHouseEngine, authors: int
) -> None:
    project = f"sketch-{uuid.uuid4().hex[:10]}"
    # Each author twice, in two different days and hours: a union over day, hour and minute rows of the range.
    moments = [DAY + timedelta(hours=20, minutes=17), DAY + timedelta(days=1, hours=4, minutes=5)]
    fields = {
        "trace_id": "t",
        "key": "quality",
        "model_version": "v1",
        "source": Source.REVIEWER,
        "value": FeedbackValue.of_score(1.0),
        "comment": "",
        "correction": "",
    }
    rows = [
        _stored(project, index * 2 + copy, moment, {**fields, "author": f"reviewer-{index}"})
        for index in range(authors)
        for copy, moment in enumerate(moments)
    ]

    def load(client: Any) -> None:
        insert_feedback_rows(client, RowBlock.of_rows(rows))
        insert_changes(client, RowBlock.of_rows(rows))

    await engine.run(load)
    store = ClickHouseFeedbackStore(engine)
    try:
        for start, end in ((None, None), (DAY + timedelta(hours=3, minutes=1), DAY + timedelta(days=2, minutes=59))):
            (counts,) = await store.aggregate(
                AggregateQuery(FeedbackScope(project=project, start_time=start, end_time=end))
            )
            assert counts.count == 2 * authors
            if authors <= EXACT_UP_TO:
                assert counts.distinct_authors == authors
            else:
                assert math.isclose(counts.distinct_authors, authors, rel_tol=4 * STANDARD_ERROR), (
                    counts.distinct_authors
                )
    finally:
        await store.close()
