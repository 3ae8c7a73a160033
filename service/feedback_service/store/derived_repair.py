"""Derived tables checked against ``feedback``, and completed where a crash cut an insert short.

Rows written to ``feedback`` reach the derived tables (``feedback_by_time``, ``user_votes``,
``feedback_rollups``) through the materialized views of ``feedback_changes``, a second insert, and ClickHouse
does not make a table and its views one transaction: a SIGKILL, a server restart or a view error between the
parts leaves feedback rows without their derived rows. Nothing repairs them by itself: a retry of the same
create finds the stored row.

The invariant checked here: every derived table holds what its view would produce from ``feedback``,
compared the way reads use it (latest revisions, summed deltas), per table:

- ``feedback_by_time``: the latest revision of each feedback is the one in ``feedback``;
- ``user_votes``: the current vote of each (trace, key, author) is the newest live user vote in ``feedback``;
- ``feedback_rollups``: each (group, grain, bucket) sums to a recomputation from the live feedback, and its
  authors sketch counts as many authors as every revision stored in the bucket has.

A correction is the difference between the two: the missing latest revision, the current vote (or a
tombstone for a vote that is no longer current), a signed delta row, the recomputed authors sketch of a
bucket. Applying the corrections makes the difference zero (a sketch merged into one that lacks authors
gives the sketch of all of them: a union), so a second repair finds nothing: repairs are exactly-once by
construction, whichever part of an insert was lost.

The work is bounded by a :class:`CheckScope`: after a restart, only feedback revisions stored since the
last checkpoint (``update_time`` is stamped by the server when a revision is stored, and indexed); from
``feedback verify``/``repair``, a project and a create-time range. This module is the SQL; the store
decides when to run it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from feedback_service.domain.feedback.listing import micros_since_epoch

CHECKPOINT_TABLE = "derived_checkpoint"
_CHECKPOINT_NAME = "derived_tables"
# A revision is stamped before it is queued and stored: a checkpoint taken meanwhile may be later than its
# update_time. The start-up check therefore looks this far before the checkpoint (queue waits are bounded by
# call deadlines, far shorter; it also absorbs small clock steps between replicas).
CHECKPOINT_MARGIN = timedelta(minutes=5)

DERIVED_TABLES = ("feedback_by_time", "user_votes", "feedback_rollups")
# On a cluster these tables are Distributed: an insert must reach its shards before it returns (the next
# check reads them). A no-op on a single node.
SYNCHRONOUS_INSERT = {"insert_distributed_sync": 1}


@dataclass(frozen=True, slots=True)
class CheckScope:
    """Which feedback a check covers.

    ``written_since``: every revision stored at or after that time, in all projects (the start-up check).
    Otherwise a project (None: every project) and a create-time range [start, end) (None: unbounded).
    """

    written_since: datetime | None = None
    project: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def describe(self) -> str:
        if self.written_since is not None:
            return f"feedback stored since {self.written_since.isoformat()}"
        parts = [f"project {self.project!r}" if self.project else "every project"]
        if self.start is not None:
            parts.append(f"created from {self.start.isoformat()}")
        if self.end is not None:
            parts.append(f"created before {self.end.isoformat()}")
        return ", ".join(parts)


@dataclass(slots=True)
class TableDifference:
    """What one derived table lacks or has in excess, as the rows that would correct it."""

    table: str
    columns: list[str]
    corrections: list[list[Any]] = field(default_factory=list)
    # Derived state with no feedback behind it: reported, never written (see the table checks).
    unexplained: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.corrections) + len(self.unexplained)


@dataclass(slots=True)
class CheckReport:
    scope: CheckScope
    tables: list[TableDifference]
    candidates: int  # feedback revisions in scope (written_since) or feedback rows in scope
    duration_s: float
    applied: bool = False

    @property
    def consistent(self) -> bool:
        return all(table.count == 0 for table in self.tables)

    @property
    def corrections(self) -> int:
        return sum(len(table.corrections) for table in self.tables)

    def by_table(self) -> dict[str, int]:
        return {table.table: table.count for table in self.tables}


class _Conditions:
    """The scope as fixed SQL conditions with typed parameters, per table.

    ``bounded`` (the start-up check): the revisions stored since a time name the few keys to compare
    (an ``affected`` set). Otherwise both sides are read over the same project and create-time range,
    widened to whole minutes, and for ``feedback_rollups`` (whose coarsest rows are per day) to whole days.
    """

    def __init__(self, scope: CheckScope) -> None:
        self.parameters: dict[str, Any] = {}
        self.bounded = scope.written_since is not None
        self.feedback: list[str] = []  # on feedback rows
        self.by_create_time: list[str] = []  # on derived rows with a create_time column
        self.feedback_days: list[str] = []  # on feedback rows, the range in whole days (feedback_rollups)
        self.by_bucket: list[str] = []  # on feedback_rollups rows
        if scope.written_since is not None:
            self.parameters["since_us"] = micros_since_epoch(scope.written_since)
            since = "fromUnixTimestamp64Micro({since_us:Int64}, 'UTC')"
            self.feedback.append(f"update_time >= {since}")
            self.by_create_time.append(f"create_time >= {since}")
            self.by_bucket.append(
                f"((grain = 'minute' AND bucket >= toStartOfMinute({since})) "
                f"OR (grain = 'hour' AND bucket >= toStartOfHour({since})) "
                f"OR (grain = 'day' AND bucket >= toStartOfDay({since})))"
            )
            return
        if scope.project is not None:
            self.parameters["project"] = scope.project
            for conditions in (self.feedback, self.by_create_time, self.feedback_days, self.by_bucket):
                conditions.append("project = {project:String}")
        if scope.start is not None:
            self.parameters["start_us"] = micros_since_epoch(scope.start)
            at = "fromUnixTimestamp64Micro({start_us:Int64}, 'UTC')"
            self.feedback.append(f"create_time >= toStartOfMinute({at})")
            self.by_create_time.append(f"create_time >= toStartOfMinute({at})")
            self.feedback_days.append(f"create_time >= toStartOfDay({at})")
            self.by_bucket.append(f"bucket >= toStartOfDay({at})")
        if scope.end is not None:
            self.parameters["end_us"] = micros_since_epoch(scope.end)
            # The end of the minute (day) holding the end time: whole minutes (days) on both sides.
            at = "fromUnixTimestamp64Micro({end_us:Int64} - 1, 'UTC')"
            self.feedback.append(f"create_time < toStartOfMinute({at}) + INTERVAL 1 MINUTE")
            self.by_create_time.append(f"create_time < toStartOfMinute({at}) + INTERVAL 1 MINUTE")
            self.feedback_days.append(f"create_time < toStartOfDay({at}) + INTERVAL 1 DAY")
            self.by_bucket.append(f"bucket < toStartOfDay({at}) + INTERVAL 1 DAY")

    @staticmethod
    def where(conditions: list[str]) -> str:
        return " AND ".join(conditions) if conditions else "1"


def _latest(columns: str, condition: str, *, bounded: bool) -> str:
    """The current revision of each feedback matching ``condition`` (on columns no revision changes), or
    nothing when it is deleted. Bounded: the latest revision of the few matching ids by primary key order
    (correct before merges, no FINAL over the table); otherwise FINAL, the fastest way through a range."""
    if bounded:
        return (
            f"(SELECT * FROM (SELECT feedback_id, {columns}, is_deleted FROM feedback WHERE {condition} "
            "ORDER BY revision DESC LIMIT 1 BY project, feedback_id) WHERE is_deleted = 0)"
        )
    return f"(SELECT feedback_id, {columns} FROM feedback FINAL WHERE {condition} AND is_deleted = 0)"


def _with(affected: str, where: _Conditions) -> str:
    return f"WITH affected AS ({affected}) " if where.bounded else ""


def _check_by_time(client: Client, where: _Conditions) -> TableDifference:
    affected = (
        f"SELECT project, create_time, feedback_id FROM feedback WHERE {where.where(where.feedback)} "
        f"UNION DISTINCT SELECT project, create_time, feedback_id FROM feedback_by_time "
        f"WHERE {where.where(where.by_create_time)}"
    )
    key = "(project, create_time, feedback_id) IN affected"
    want_filter = key if where.bounded else where.where(where.feedback)
    have_filter = key if where.bounded else where.where(where.by_create_time)
    sql = (
        _with(affected, where) + "SELECT project, create_time, feedback_id, want.revision, have.revision FROM "
        f"(SELECT project, create_time, feedback_id, max(revision) AS revision FROM feedback WHERE {want_filter} "
        "GROUP BY project, create_time, feedback_id) AS want "
        f"FULL OUTER JOIN (SELECT project, create_time, feedback_id, max(revision) AS revision FROM feedback_by_time "
        f"WHERE {have_filter} GROUP BY project, create_time, feedback_id) AS have "
        "USING (project, create_time, feedback_id) WHERE want.revision != have.revision"
    )
    difference = TableDifference("feedback_by_time", ["project", "feedback_id", "revision"])
    for project, _create_time, feedback_id, want, have in client.query(sql, parameters=where.parameters).result_rows:
        if want > have:
            difference.corrections.append([project, feedback_id, want])
        else:
            difference.unexplained.append(f"{project}/{feedback_id}: revision {have} has no feedback row")
    return difference


def _apply_by_time(client: Client, difference: TableDifference) -> None:
    # The missing latest revisions, copied from feedback as the view would have (every column).
    for project, chunk in _by_project(difference.corrections):
        client.command(
            "INSERT INTO feedback_by_time SELECT * FROM feedback WHERE project = {project:String} "
            "AND (feedback_id, revision) IN {ids:Array(Tuple(String, UInt64))}",
            parameters={"project": project, "ids": [(row[1], row[2]) for row in chunk]},
            settings=SYNCHRONOUS_INSERT,
        )


_VOTE_KEY = "project, trace_id, key, author"
_USER_VOTE = "source = 'user' AND author != ''"


def _check_user_votes(client: Client, where: _Conditions) -> TableDifference:
    affected = (
        f"SELECT {_VOTE_KEY} FROM feedback WHERE {_USER_VOTE} AND {where.where(where.feedback)} "
        f"UNION DISTINCT SELECT {_VOTE_KEY} FROM user_votes WHERE {where.where(where.by_create_time)}"
    )
    # The trace ids again on their own let the bloom filter index of feedback skip granules.
    in_affected = f"({_VOTE_KEY}) IN affected AND trace_id IN (SELECT trace_id FROM affected)"
    # In a range, both sides are the votes created in it: under one vote per user, a key's current vote
    # is its newest, so a vote created in the range is current on both sides or on neither.
    want_filter = in_affected if where.bounded else where.where(where.feedback)
    have_filter = in_affected if where.bounded else where.where(where.by_create_time)
    latest = _latest(f"{_VOTE_KEY}, create_time", f"{_USER_VOTE} AND {want_filter}", bounded=where.bounded)
    sql = (
        _with(affected, where) + f"SELECT {_VOTE_KEY}, want.vote_id, want.vote_time, have.vote_id, have.vote_time "
        f"FROM (SELECT {_VOTE_KEY}, argMax(feedback_id, create_time) AS vote_id, max(create_time) AS vote_time "
        f"FROM {latest} GROUP BY {_VOTE_KEY}) AS want "
        f"FULL OUTER JOIN (SELECT {_VOTE_KEY}, feedback_id AS vote_id, create_time AS vote_time FROM user_votes "
        f"FINAL WHERE is_deleted = 0 AND {have_filter}) AS have "
        f"USING ({_VOTE_KEY}) WHERE want.vote_id != have.vote_id"
    )
    difference = TableDifference(
        "user_votes", ["project", "trace_id", "key", "author", "feedback_id", "create_time", "is_deleted"]
    )
    for project, trace_id, key, author, want_id, want_time, have_id, have_time in client.query(
        sql, parameters=where.parameters
    ).result_rows:
        vote = [project, trace_id, key, author]
        if want_id and (not have_id or want_time >= have_time):
            # The current vote; an equal create_time wins by being inserted later.
            difference.corrections.append([*vote, want_id, want_time, 0])
        elif not want_id:
            # A vote that is no longer current (deleted or replaced): its tombstone.
            difference.corrections.append([*vote, have_id, have_time, 1])
        else:
            difference.unexplained.append(
                f"{project}/{trace_id}/{key}/{author}: current vote {have_id} is newer than any stored vote"
            )
    return difference


_GROUP = "project, model, model_version, key, source"
_SUMS = ("feedback_count", "thumbs_up", "thumbs_down", "comments", "corrections")
_MAPS = ("labels", "scores")
# Each feedback row counted in its minute, hour and day, as the view of migration 0012 does it.
_GRAIN_TYPE = "Enum8('minute' = 1, 'hour' = 2, 'day' = 3)"
_IN_GRAINS = (
    "ARRAY JOIN [('minute', toStartOfMinute(toDateTime(create_time, 'UTC'))), "
    "('hour', toStartOfHour(toDateTime(create_time, 'UTC'))), "
    "('day', toStartOfDay(toDateTime(create_time, 'UTC')))] AS g"
)
_GRAIN_BUCKET = f"CAST(g.1 AS {_GRAIN_TYPE}) AS grain, g.2 AS bucket"
_ROLLUP_KEY = f"{_GROUP}, grain, bucket"
# The authors sketch: the column's function (migration 0012), finalized to compare, as a state to correct.
_SKETCH_COUNT = "uniqCombined64(14)"
_SKETCH_MERGE = "uniqCombined64Merge(14)"
_SKETCH_STATE = "uniqCombined64State(14)"
ROLLUP_COLUMNS = ["project", "model", "model_version", "key", "source", "grain", "bucket", *_SUMS, *_MAPS]


def _rollup_filters(where: _Conditions) -> tuple[str, str, str]:
    """The affected (group, grain, bucket) keys (bounded), and the filters of feedback rows (before the grains
    are joined), of their (group, grain, bucket) rows (after) and of feedback_rollups rows."""
    affected = (
        f"SELECT {_GROUP}, {_GRAIN_BUCKET} FROM feedback {_IN_GRAINS} WHERE {where.where(where.feedback)} "
        f"UNION DISTINCT SELECT {_ROLLUP_KEY} FROM feedback_rollups WHERE {where.where(where.by_bucket)}"
    )
    if not where.bounded:
        return affected, where.where(where.feedback_days), "1"
    # A bucket is recomputed from all of its feedback: the groups and the create-time span of the affected
    # buckets (whole days, day rows included) let the minmax index skip what is outside.
    feedback_filter = (
        f"({_GROUP}) IN (SELECT {_GROUP} FROM affected) "
        "AND create_time >= (SELECT min(bucket) FROM affected) "
        "AND create_time < (SELECT max(bucket) FROM affected) + INTERVAL 1 DAY"
    )
    return affected, feedback_filter, f"({_ROLLUP_KEY}) IN affected"


def _check_rollups(client: Client, where: _Conditions) -> TableDifference:
    """Sums per (group, grain, bucket) against the live feedback, and each bucket's authors sketch (by its
    count) against the authors of every revision stored in the bucket."""
    affected, feedback_filter, bucket_filter = _rollup_filters(where)
    have_filter = bucket_filter if where.bounded else where.where(where.by_bucket)
    columns = f"{_GROUP}, create_time, value_kind, thumb, score, label, comment != '' AS has_comment, "
    columns += "correction != '' AS has_correction"
    latest = _latest(columns, feedback_filter, bounded=where.bounded)
    want = (
        f"SELECT {_GROUP}, {_GRAIN_BUCKET}, toInt64(count()) AS n_feedback_count, "
        "toInt64(countIf(value_kind = 'thumb' AND thumb = 'up')) AS n_thumbs_up, "
        "toInt64(countIf(value_kind = 'thumb' AND thumb = 'down')) AS n_thumbs_down, "
        "toInt64(countIf(has_comment)) AS n_comments, toInt64(countIf(has_correction)) AS n_corrections, "
        "sumMap(map(label, toInt64(value_kind = 'label'))) AS n_labels, "
        "sumMap(map(reinterpretAsUInt64(score), toInt64(value_kind = 'score'))) AS n_scores "
        f"FROM {latest} {_IN_GRAINS} WHERE {bucket_filter} GROUP BY {_ROLLUP_KEY}"
    )
    have = (
        f"SELECT {_ROLLUP_KEY}, "
        + ", ".join(f"sum({name}) AS n_{name}" for name in _SUMS)
        + ", "
        + ", ".join(f"sumMap({name}) AS n_{name}" for name in _MAPS)
        + f" FROM feedback_rollups WHERE {have_filter} GROUP BY {_ROLLUP_KEY}"
    )
    differences = [f"want.n_{name} - have.n_{name} AS d_{name}" for name in _SUMS]
    differences += [
        f"mapFilter((k, n) -> n != 0, mapSubtract(want.n_{name}, have.n_{name})) AS d_{name}" for name in _MAPS
    ]
    nonzero = [f"d_{name} != 0" for name in _SUMS] + [f"length(d_{name}) > 0" for name in _MAPS]
    sums_sql = (
        _with(affected, where) + f"SELECT {_ROLLUP_KEY}, {', '.join(differences)} "
        f"FROM ({want}) AS want FULL OUTER JOIN ({have}) AS have USING ({_ROLLUP_KEY}) "
        f"WHERE {' OR '.join(nonzero)}"
    )
    authors_sql = (
        _with(affected, where) + f"SELECT {_ROLLUP_KEY}, want.n, have.n FROM "
        f"(SELECT {_GROUP}, {_GRAIN_BUCKET}, {_SKETCH_COUNT}(author) AS n FROM feedback {_IN_GRAINS} "
        f"WHERE author != '' AND {feedback_filter} AND {bucket_filter} GROUP BY {_ROLLUP_KEY}) AS want "
        f"FULL OUTER JOIN (SELECT {_ROLLUP_KEY}, {_SKETCH_MERGE}(authors) AS n FROM feedback_rollups "
        f"WHERE {have_filter} GROUP BY {_ROLLUP_KEY}) AS have USING ({_ROLLUP_KEY}) WHERE want.n != have.n"
    )
    by_key: dict[tuple[Any, ...], list[Any]] = {}
    for row in client.query(sums_sql, parameters=where.parameters).result_rows:
        by_key[tuple(_naive_times(row[:7]))] = [*_naive_times(row), 0]
    difference = TableDifference("feedback_rollups", [*ROLLUP_COLUMNS, "authors"])
    for *stored_key, want_authors, have_authors in client.query(authors_sql, parameters=where.parameters).result_rows:
        key = _naive_times(stored_key)
        if want_authors < have_authors:
            # A sketch only grows, and only from stored feedback: more authors than feedback has is unexplained.
            where_ = "/".join(str(part) for part in key)
            difference.unexplained.append(f"{where_}: {have_authors} authors counted, {want_authors} in feedback")
            continue
        row = by_key.setdefault(tuple(key), [*key, 0, 0, 0, 0, 0, {}, {}, 0])
        row[-1] = int(want_authors)  # the sketch lacks authors: add the recomputed one (a union: idempotent)
    difference.corrections = list(by_key.values())
    return difference


def _apply_rollups(client: Client, difference: TableDifference) -> None:
    width = len(ROLLUP_COLUMNS)
    sums = [row[:width] for row in difference.corrections if any(row[7:width])]
    if sums:
        client.insert("feedback_rollups", sums, column_names=ROLLUP_COLUMNS, settings=SYNCHRONOUS_INSERT)
    sketches = [row for row in difference.corrections if row[-1]]
    for project, chunk in _by_project(sketches):
        keys = [(*(str(part) for part in row[1:6]), _epoch_s(row[6])) for row in chunk]
        low, high = min(row[6] for row in chunk), max(row[6] for row in chunk)
        client.command(
            f"INSERT INTO feedback_rollups ({_ROLLUP_KEY}, authors) "
            f"SELECT {_GROUP}, {_GRAIN_BUCKET}, {_SKETCH_STATE}(author) FROM feedback {_IN_GRAINS} "
            "WHERE project = {project:String} AND author != '' "
            "AND create_time >= toDateTime({low:Int64}, 'UTC') "
            "AND create_time < toDateTime({high:Int64}, 'UTC') + INTERVAL 1 DAY "
            "AND (model, model_version, key, source, grain, toUInt32(bucket)) "
            "IN {keys:Array(Tuple(String, String, String, String, String, UInt32))} "
            f"GROUP BY {_ROLLUP_KEY}",
            parameters={"project": project, "keys": keys, "low": _epoch_s(low), "high": _epoch_s(high)},
            settings=SYNCHRONOUS_INSERT,
        )


def _epoch_s(moment: datetime) -> int:
    """Seconds since the epoch of a bucket read back naive (ClickHouse DateTime('UTC'))."""
    return micros_since_epoch(moment if moment.tzinfo else moment.replace(tzinfo=UTC)) // 1_000_000


def _naive_times(row: Sequence[Any]) -> list[Any]:
    return [value.replace(tzinfo=None) if isinstance(value, datetime) else value for value in row]


def _by_project(rows: list[list[Any]]) -> list[tuple[str, list[list[Any]]]]:
    grouped: dict[str, list[list[Any]]] = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(row)
    return list(grouped.items())


def _insert_rows(table: str) -> Callable[[Client, TableDifference], None]:
    def apply(client: Client, difference: TableDifference) -> None:
        if difference.corrections:
            client.insert(table, difference.corrections, column_names=difference.columns, settings=SYNCHRONOUS_INSERT)

    return apply


_CHECKS: tuple[tuple[Callable[[Client, _Conditions], TableDifference], Callable[[Client, TableDifference], None]], ...]
_CHECKS = (
    (_check_by_time, _apply_by_time),
    (_check_user_votes, _insert_rows("user_votes")),
    (_check_rollups, _apply_rollups),
)


def _count_candidates(client: Client, where: _Conditions) -> int:
    sql = f"SELECT count() FROM feedback WHERE {where.where(where.feedback)}"
    return int(client.query(sql, parameters=where.parameters).result_rows[0][0])


def check_derived_tables(client: Client, scope: CheckScope, *, apply: bool) -> CheckReport:
    """Compare every derived table with ``feedback`` over ``scope``; with ``apply``, write the corrections.

    Blocking: run it on a database worker. With ``apply`` it must not run beside writes to the same
    feedback (the store runs it before its writer starts, or on the writer itself).
    """
    started = time.monotonic()
    where = _Conditions(scope)
    candidates = _count_candidates(client, where)
    tables: list[TableDifference] = []
    if candidates or scope.written_since is None:
        for check, correct in _CHECKS:
            difference = check(client, where)
            if apply:
                correct(client, difference)
            tables.append(difference)
    else:
        tables = [TableDifference(name, []) for name in DERIVED_TABLES]
    return CheckReport(scope, tables, candidates, time.monotonic() - started, applied=apply)


def read_checkpoint(client: Client) -> datetime | None:
    """Before this moment every revision had its derived rows (None: never checked)."""
    rows = client.query(
        f"SELECT consistent_before FROM {CHECKPOINT_TABLE} FINAL WHERE name = {{name:String}}",
        parameters={"name": _CHECKPOINT_NAME},
    ).result_rows
    return rows[0][0].replace(tzinfo=UTC) if rows else None


def write_checkpoint(client: Client, consistent_before: datetime) -> None:
    client.insert(
        CHECKPOINT_TABLE,
        [[_CHECKPOINT_NAME, consistent_before, datetime.now(UTC)]],
        column_names=["name", "consistent_before", "record_time"],
        settings=SYNCHRONOUS_INSERT,
    )


def start_up_scope(checkpoint: datetime | None) -> CheckScope:
    """What a start must check: everything stored since the checkpoint (its margin included), or
    everything when this database was never checked (the first start after upgrading)."""
    if checkpoint is None:
        return CheckScope()
    return CheckScope(written_since=checkpoint - CHECKPOINT_MARGIN)
