"""Derived tables checked against ``feedback``, and completed where a crash cut an insert short.

An insert into ``feedback`` also feeds four materialized views (``feedback_by_time``, ``user_votes``,
``feedback_aggregates``, ``feedback_authors``), and ClickHouse does not make the table and its views one
transaction: a SIGKILL, a server restart or a view error between the parts leaves feedback rows without
their derived rows. Nothing repairs them by itself: a retry of the same create finds the stored row.

The invariant checked here: every derived table holds what its view would produce from ``feedback``,
compared the way reads use it (latest revisions, summed deltas), per table:

- ``feedback_by_time``: the latest revision of each feedback is the one in ``feedback``;
- ``user_votes``: the current vote of each (trace, key, author) is the newest live user vote in ``feedback``;
- ``feedback_aggregates``: each (group, minute) sums to a recomputation from the live feedback;
- ``feedback_authors``: each (group, author) sums to the author's live feedback count.

A correction is the difference between the two: the missing latest revision, the current vote (or a
tombstone for a vote that is no longer current), a signed delta row. Applying the corrections makes the
difference zero, so a second repair finds nothing: repairs are exactly-once by construction, whichever
part of an insert was lost.

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

DERIVED_TABLES = ("feedback_by_time", "user_votes", "feedback_aggregates", "feedback_authors")
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
    widened to whole minutes (aggregates are per minute); ``feedback_authors`` holds all-time counts, so
    its check covers the whole project whatever the time range.
    """

    def __init__(self, scope: CheckScope) -> None:
        self.parameters: dict[str, Any] = {}
        self.bounded = scope.written_since is not None
        self.feedback: list[str] = []  # on feedback rows
        self.by_create_time: list[str] = []  # on derived rows with a create_time column
        self.by_minute: list[str] = []  # on feedback_aggregates rows
        self.by_project: list[str] = []  # on feedback rows for feedback_authors, and on its own rows
        if scope.written_since is not None:
            self.parameters["since_us"] = micros_since_epoch(scope.written_since)
            since = "fromUnixTimestamp64Micro({since_us:Int64}, 'UTC')"
            self.feedback.append(f"update_time >= {since}")
            self.by_create_time.append(f"create_time >= {since}")
            self.by_minute.append(f"minute >= toStartOfMinute({since})")
            return
        if scope.project is not None:
            self.parameters["project"] = scope.project
            for conditions in (self.feedback, self.by_create_time, self.by_minute, self.by_project):
                conditions.append("project = {project:String}")
        if scope.start is not None:
            self.parameters["start_us"] = micros_since_epoch(scope.start)
            start = "toStartOfMinute(fromUnixTimestamp64Micro({start_us:Int64}, 'UTC'))"
            self.feedback.append(f"create_time >= {start}")
            self.by_create_time.append(f"create_time >= {start}")
            self.by_minute.append(f"minute >= {start}")
        if scope.end is not None:
            self.parameters["end_us"] = micros_since_epoch(scope.end)
            # The end of the minute holding the end time: whole minutes on both sides.
            end = "(toStartOfMinute(fromUnixTimestamp64Micro({end_us:Int64} - 1, 'UTC')) + INTERVAL 1 MINUTE)"
            self.feedback.append(f"create_time < {end}")
            self.by_create_time.append(f"create_time < {end}")
            self.by_minute.append(f"minute < {end}")

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
_MAPS = ("labels", "scores", "authors")


def _check_aggregates(client: Client, where: _Conditions) -> TableDifference:
    affected = (
        f"SELECT {_GROUP}, toStartOfMinute(create_time) AS minute FROM feedback WHERE {where.where(where.feedback)} "
        f"UNION DISTINCT SELECT {_GROUP}, minute FROM feedback_aggregates WHERE {where.where(where.by_minute)}"
    )
    if where.bounded:
        # The create-time bounds of the affected minutes let the minmax index skip older parts.
        want_filter = (
            f"({_GROUP}, toStartOfMinute(create_time)) IN affected "
            "AND create_time >= (SELECT min(minute) FROM affected) "
            "AND create_time < (SELECT max(minute) FROM affected) + INTERVAL 1 MINUTE"
        )
        have_filter = f"({_GROUP}, minute) IN affected"
    else:
        want_filter, have_filter = where.where(where.feedback), where.where(where.by_minute)
    columns = f"{_GROUP}, create_time, value_kind, thumb, score, label, comment != '' AS has_comment, "
    columns += "correction != '' AS has_correction, author"
    latest = _latest(columns, want_filter, bounded=where.bounded)
    want = (
        f"SELECT {_GROUP}, toStartOfMinute(create_time) AS minute, toInt64(count()) AS n_feedback_count, "
        "toInt64(countIf(value_kind = 'thumb' AND thumb = 'up')) AS n_thumbs_up, "
        "toInt64(countIf(value_kind = 'thumb' AND thumb = 'down')) AS n_thumbs_down, "
        "toInt64(countIf(has_comment)) AS n_comments, toInt64(countIf(has_correction)) AS n_corrections, "
        "sumMap(map(label, toInt64(value_kind = 'label'))) AS n_labels, "
        "sumMap(map(reinterpretAsUInt64(score), toInt64(value_kind = 'score'))) AS n_scores, "
        "sumMap(map(author, toInt64(author != ''))) AS n_authors "
        f"FROM {latest} GROUP BY {_GROUP}, minute"
    )
    have = (
        f"SELECT {_GROUP}, minute, "
        + ", ".join(f"sum({name}) AS n_{name}" for name in _SUMS)
        + ", "
        + ", ".join(f"sumMap({name}) AS n_{name}" for name in _MAPS)
        + f" FROM feedback_aggregates WHERE {have_filter} GROUP BY {_GROUP}, minute"
    )
    differences = [f"want.n_{name} - have.n_{name} AS d_{name}" for name in _SUMS]
    differences += [
        f"mapFilter((k, n) -> n != 0, mapSubtract(want.n_{name}, have.n_{name})) AS d_{name}" for name in _MAPS
    ]
    nonzero = [f"d_{name} != 0" for name in _SUMS] + [f"length(d_{name}) > 0" for name in _MAPS]
    sql = (
        _with(affected, where) + f"SELECT {_GROUP}, minute, {', '.join(differences)} "
        f"FROM ({want}) AS want FULL OUTER JOIN ({have}) AS have USING ({_GROUP}, minute) "
        f"WHERE {' OR '.join(nonzero)}"
    )
    rows = client.query(sql, parameters=where.parameters).result_rows
    difference = TableDifference(
        "feedback_aggregates", ["project", "model", "model_version", "key", "source", "minute", *_SUMS, *_MAPS]
    )
    difference.corrections = [_naive_times(row) for row in rows]
    return difference


def _check_authors(client: Client, where: _Conditions) -> TableDifference:
    affected = f"SELECT {_GROUP}, author FROM feedback WHERE author != '' AND {where.where(where.feedback)}"
    in_affected = f"({_GROUP}, author) IN affected"
    want_filter = in_affected if where.bounded else where.where(where.by_project)
    have_filter = in_affected if where.bounded else where.where(where.by_project)
    latest = _latest(f"{_GROUP}, author", f"author != '' AND {want_filter}", bounded=where.bounded)
    sql = (
        _with(affected, where) + f"SELECT {_GROUP}, author, want.n - have.n AS difference FROM "
        f"(SELECT {_GROUP}, author, toInt64(count()) AS n FROM {latest} GROUP BY {_GROUP}, author) AS want "
        f"FULL OUTER JOIN (SELECT {_GROUP}, author, sum(feedback_count) AS n FROM feedback_authors "
        f"WHERE {have_filter} GROUP BY {_GROUP}, author) AS have "
        f"USING ({_GROUP}, author) WHERE want.n != have.n"
    )
    difference = TableDifference(
        "feedback_authors", ["project", "model", "model_version", "key", "source", "author", "feedback_count"]
    )
    difference.corrections = [list(row) for row in client.query(sql, parameters=where.parameters).result_rows]
    return difference


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
    (_check_aggregates, _insert_rows("feedback_aggregates")),
    (_check_authors, _insert_rows("feedback_authors")),
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
