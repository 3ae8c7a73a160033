"""The feedback store over ClickHouse: every write through one micro-batcher, typed-parameter reads."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import structlog
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from feedback_service.domain.changes import ChangeFeed
from feedback_service.domain.cursor_tokens import PageCursor
from feedback_service.domain.errors import FeedbackServiceError, StoreUnavailableError
from feedback_service.domain.evaluation.aggregates import (
    AggregateQuery,
    FeedbackScope,
    GroupCounts,
    GroupField,
    GroupKey,
    TimeBucket,
)
from feedback_service.domain.feedback.listing import FeedbackFilter, micros_since_epoch
from feedback_service.domain.feedback.write_plan import Command, Create, Delete, Outcome, Update, VoteKey, WritePlan
from feedback_service.domain.model import Feedback
from feedback_service.domain.ports import Change, CreateOutcome, ExportFilter, NewFeedback
from feedback_service.store.batcher import MicroBatcher
from feedback_service.store.cluster_ddl import check_cluster_name
from feedback_service.store.derived_repair import (
    CheckReport,
    CheckScope,
    check_derived_tables,
    read_checkpoint,
    start_up_scope,
    write_checkpoint,
)
from feedback_service.store.deriver import Deriver, DeriveRows, insert_changes
from feedback_service.store.engine import ClickHouseEngine
from feedback_service.store.query_params import time_range
from feedback_service.store.rows import (
    SELECT_LIST,
    TABLE,
    RowBlock,
    StoredRow,
    source_name,
    source_of,
)
from feedback_service.store.write_batch import read_latest, read_state, revision_block

_log = structlog.get_logger("feedback_service.store")

ROLLUPS_TABLE = "feedback_rollups"
EXPORT_TABLE = "feedback_by_time"

# Follow streams poll this: it changes when derived rows land (aggregates and exports read those).
_MARKED_TABLE = ROLLUPS_TABLE
_WRITE_MARKER = (
    f"SELECT max(max_block_number) FROM system.parts "
    f"WHERE database = currentDatabase() AND table = '{_MARKED_TABLE}' AND active"
)


def write_marker_sql(cluster: str | None) -> str:
    """A number that grows with every insert into the derived tables, wherever it lands.

    On a cluster, `feedback_rollups` is a Distributed table without parts: each replica's highest block
    number of `feedback_rollups_local` grows with its inserts (merges keep it), so their sum grows with any.
    The cluster name goes into the SQL only after check_cluster_name (the rule config applies too).
    """
    if cluster is None:
        return _WRITE_MARKER
    return (
        "SELECT sum(highest) FROM (SELECT hostName() AS replica, max(max_block_number) AS highest "
        f"FROM clusterAllReplicas('{check_cluster_name(cluster)}', system.parts) "
        f"WHERE database = currentDatabase() AND table = '{_MARKED_TABLE}_local' AND active GROUP BY replica)"
    )


_GROUP_COLUMNS = {
    GroupField.MODEL: "model",
    GroupField.MODEL_VERSION: "model_version",
    GroupField.KEY: "key",
    GroupField.SOURCE: "source",
}
# Rows of feedback_rollups come in three grains (migration 0012). A range reads each part of it from the
# coarsest grain that fits: whole days from day rows, the hours at its edges from hour rows, the rest from
# minute rows; a time bucket reads its own grain for whole buckets and finer ones only for partial buckets.
_GRAIN_WIDTHS = {"day": timedelta(days=1), "hour": timedelta(hours=1), "minute": timedelta(minutes=1)}
_GRAINS_FOR_BUCKET = {
    TimeBucket.NONE: ("day", "hour", "minute"),
    TimeBucket.DAY: ("day", "hour", "minute"),
    TimeBucket.HOUR: ("hour", "minute"),
    TimeBucket.MINUTE: ("minute",),
}
_BUCKET_EXPRESSIONS = {
    TimeBucket.MINUTE: "bucket",
    TimeBucket.HOUR: "toStartOfHour(bucket)",
    TimeBucket.DAY: "toStartOfDay(bucket)",
}
# Distinct authors: the union of the buckets' sketches (uniqCombined64 with 2^14 cells, the column's function in
# migration 0012), exact up to 511 authors, ~0.8% standard error above.
_MERGED_AUTHORS = "uniqCombined64Merge(14)(authors)"


InsertRows = Callable[[Client, RowBlock], None]
# After a failed derive or insert, the store repairs; while the database refuses, it tries again this often.
REPAIR_RETRY_S = (0.2, 0.5, 1.0, 2.0)


@dataclass(frozen=True, slots=True)
class BatchingConfig:
    """Micro-batcher bounds for writes."""

    max_rows: int = 10_000
    max_delay_s: float = 0.002
    max_queued_rows: int = 200_000


class ClickHouseFeedbackStore:
    """Implements feedback_service.domain.ports.FeedbackStore.

    Creates, updates and deletes all go through one micro-batcher with a single
    worker, so in this process every read-modify-write (idempotency checks,
    vote replacement, updates) sees the outcome of the writes before it. The writer
    inserts into ``feedback`` only; the deriver (:mod:`deriver`) feeds the derived
    tables after the callers have their answer, and reads of derived tables wait for it.
    """

    def __init__(
        self,
        engine: ClickHouseEngine,
        batching: BatchingConfig | None = None,
        *,
        settle_s: float = 0.0,
        cluster: str | None = None,
        insert_rows: InsertRows | None = None,
        derive_rows: DeriveRows | None = None,
    ) -> None:
        """``insert_rows`` writes a flush's rows into ``feedback``, ``derive_rows`` into the derived tables
        (tests replace them to stop a process or fail an insert at a chosen point)."""
        batching = batching or BatchingConfig()
        self._engine = engine
        self._insert_rows = insert_rows or insert_feedback_rows
        self._needs_repair = False  # an insert failed: its rows may be stored, and not derived
        self._write_lock = asyncio.Lock()  # the writer's flushes, and repairs, which must not overlap them
        self._repairing: asyncio.Task[None] | None = None
        # Vote changes written but not derived yet (user_votes lags): key -> (flush seq, current vote or None).
        self._pending_votes: dict[VoteKey, tuple[int, str | None]] = {}
        self._write_marker_sql = write_marker_sql(cluster)
        self._settle = timedelta(seconds=settle_s)
        self.changes = ChangeFeed()
        self._deriver = Deriver(
            engine,
            on_failure=self._repair_soon,
            derive_rows=derive_rows or insert_changes,
        )
        self._in_flight: Counter[datetime] = Counter()
        self.batcher: MicroBatcher[Command, Outcome] = MicroBatcher(
            self._flush,
            max_rows=batching.max_rows,
            max_delay_s=batching.max_delay_s,
            max_queued_rows=batching.max_queued_rows,
        )

    def start(self) -> None:
        self.batcher.start()
        self._deriver.start()

    async def close(self) -> None:
        """Flush queued writes, derive them, record a checkpoint; the engine is closed by its owner."""
        await self.batcher.close()
        with contextlib.suppress(TimeoutError):
            await self._deriver.close()
        if self._repairing is not None:
            self._repairing.cancel()
            await asyncio.gather(self._repairing, return_exceptions=True)
        if not self._needs_repair and not self._deriver.failed and not self._deriver.pending:
            now = datetime.now(UTC)
            with contextlib.suppress(FeedbackServiceError, ClickHouseError):
                await self._engine.run(lambda client: write_checkpoint(client, now))

    async def repair_after_start(self) -> CheckReport:
        """Complete what a crash left out of the derived tables, before any write of this process.

        Checks the revisions stored since the last checkpoint (all of them on a database never
        checked), writes the corrections, then records a new checkpoint. Call before ``start``.
        """

        def repair(client: Client) -> CheckReport:
            started = datetime.now(UTC)
            report = check_derived_tables(client, start_up_scope(read_checkpoint(client)), apply=True)
            write_checkpoint(client, started)
            return report

        return await self._engine.run(repair)

    async def check_derived(self, scope: CheckScope, *, apply: bool) -> CheckReport:
        """``feedback verify`` (apply=False) and ``feedback repair`` over a project and time range."""
        await self._derived()
        return await self._engine.run(partial(check_derived_tables, scope=scope, apply=apply))

    async def create(self, items: Sequence[NewFeedback]) -> list[CreateOutcome]:
        # Only the oldest create time of a request matters to the watermark.
        oldest = min((item.feedback.create_time for item in items if item.feedback.create_time), default=None)
        if oldest is not None:
            self._in_flight[oldest] += 1
        try:
            outcomes = await self.batcher.submit([Create(item) for item in items])
        finally:
            if oldest is not None:
                self._in_flight[oldest] -= 1
                if not self._in_flight[oldest]:
                    del self._in_flight[oldest]
        return [outcome for outcome in outcomes if isinstance(outcome, CreateOutcome)]

    async def update(self, project: str, feedback_id: str, change: Change) -> Feedback:
        (outcome,) = await self.batcher.submit([Update(project, feedback_id, change)])
        if isinstance(outcome, FeedbackServiceError):
            raise outcome
        assert isinstance(outcome, Feedback)
        return outcome

    async def delete(self, project: str, feedback_id: str, now: datetime, *, actor: str = "") -> None:
        (outcome,) = await self.batcher.submit([Delete(project, feedback_id, now, actor)])
        if isinstance(outcome, FeedbackServiceError):
            raise outcome

    async def write_marker(self) -> int:
        # Every derive makes a part with a new, higher block number; merges keep the highest.
        rows = await self._engine.run(lambda client: client.query(self._write_marker_sql).result_rows)
        return int(rows[0][0])

    def safe_watermark(self) -> datetime:
        oldest_in_flight = min(self._in_flight, default=None)
        now = datetime.now(UTC)
        moment = now if oldest_in_flight is None else min(now, oldest_in_flight)
        return moment - self._settle

    async def get(self, project: str, feedback_id: str) -> Feedback | None:
        rows = await self._engine.run(partial(read_latest, project=project, ids=[feedback_id]))
        return None if not rows or rows[0].deleted else rows[0].feedback

    async def list_feedback(self, list_filter: FeedbackFilter, after: PageCursor | None, limit: int) -> list[Feedback]:
        sql, parameters = _list_query(list_filter, after, limit)
        return await self._select_feedback(sql, parameters)

    async def export_page(
        self, export_filter: ExportFilter, after: PageCursor | None, before: datetime, limit: int
    ) -> list[Feedback]:
        await self._derived()
        sql, parameters = _export_query(export_filter, after, before, limit)
        return await self._select_feedback(sql, parameters)

    async def aggregate(self, query: AggregateQuery) -> list[GroupCounts]:
        await self._derived()
        sql, parameters = _aggregate_query(query)
        rows = await self._engine.run(lambda client: client.query(sql, parameters=parameters).result_rows)
        return [_group_counts(query, row) for row in rows]

    async def _select_feedback(self, sql: str, parameters: dict[str, Any]) -> list[Feedback]:
        result = await self._engine.run(lambda client: client.query(sql, parameters=parameters).result_rows)
        return [StoredRow(row).feedback for row in result]

    async def _derived(self) -> None:
        """Reads of derived tables see every write acknowledged before them."""
        try:
            await self._deriver.wait_until_derived()
        except TimeoutError:
            raise StoreUnavailableError("the derived tables are behind the writes; retry with backoff") from None

    async def _flush(self, commands: list[Command]) -> list[Outcome]:
        async with self._write_lock:
            if self._needs_repair or self._deriver.failed:
                await self._repair_pending()
            outcomes, rows, projects, started = await self._engine.run(partial(self._write, commands=commands))
            if rows:
                self._deriver.submit(rows, projects, started)
                # Followers hear of a write at once, not when it is derived: their read waits for the derive
                # and makes the deriver go now instead of after DERIVE_DELAY_S (freshness ~0.3 -> ~0.1 s).
                self.changes.publish(projects)
        return outcomes

    def _write(self, client: Client, commands: list[Command]) -> tuple[list[Outcome], RowBlock, set[str], datetime]:
        """One flush on the single writer: read what the commands touch, apply them, insert into feedback."""
        seq = self._deriver.submitted_seq + 1  # this flush's, once submitted (under the write lock)
        derived = self._deriver.derived_seq
        # Votes the deriver has reached are in user_votes now: keep only the others.
        self._pending_votes = {key: entry for key, entry in self._pending_votes.items() if entry[0] > derived}
        pending = {key: vote for key, (_, vote) in self._pending_votes.items()}
        started = datetime.now(UTC)
        plan = WritePlan(read_state(client, commands, pending_votes=pending))
        outcomes = [plan.apply(command) for command in commands]
        rows = revision_block(plan.revisions)  # encoded once: the deriver sends the same bytes
        if rows:
            try:
                self._insert_rows(client, rows)
            except Exception:
                # An insert that failed may still have stored its rows (e.g. the reply was lost).
                self._needs_repair = True
                raise
        self._pending_votes.update({key: (seq, vote) for key, vote in plan.votes.items()})
        return outcomes, rows, plan.projects, started

    async def _repair_pending(self) -> None:
        """Under the write lock: make the derived tables whole for everything written so far (the pending
        derives included, which the repair replaces), then let the deriver go on."""
        seq, projects = self._deriver.take_pending()

        def repair(client: Client) -> CheckReport:
            return check_derived_tables(client, start_up_scope(read_checkpoint(client)), apply=True)

        report = await self._engine.run(repair)
        self._needs_repair = False
        _log.warning("derived_tables_repaired", repaired=report.corrections, repaired_by_table=report.by_table())
        await self._deriver.mark_derived(seq)
        # Followers heard of the pending writes when they were submitted; a repair may change more.
        self.changes.publish(projects | {row[0] for t in report.tables for row in t.corrections})

    def _repair_soon(self) -> None:
        """A derive failed: repair now, without waiting for the next write (readers are waiting)."""
        if self._repairing is None or self._repairing.done():
            self._repairing = asyncio.create_task(self._repair_until_done(), name="derived-repair")

    async def _repair_until_done(self) -> None:
        for pause_s in (*REPAIR_RETRY_S, *(REPAIR_RETRY_S[-1],) * 1_000_000):
            async with self._write_lock:
                if not (self._needs_repair or self._deriver.failed):
                    return
                try:
                    await self._repair_pending()
                    return
                except (FeedbackServiceError, ClickHouseError) as error:
                    _log.warning("derived_repair_failed", error=str(error)[:300], retry_in_s=pause_s)
            await asyncio.sleep(pause_s)


# Skipping the in-block merge costs nothing to reads (they are correct before merges anyway: FINAL, argMax).
_INSERT_SETTINGS = {"optimize_on_insert": 0}


def insert_feedback_rows(client: Client, rows: RowBlock) -> None:
    """A flush's encoded rows into ``feedback``."""
    rows.insert_into(client, TABLE, _INSERT_SETTINGS)


def _scope_conditions(scope: FeedbackScope, time_column: str) -> tuple[list[str], dict[str, Any]]:
    """WHERE conditions shared by exports and aggregates; fixed SQL, every value a parameter."""
    conditions = ["project = {project:String}"]
    parameters: dict[str, Any] = {"project": scope.project}
    for column, values in (("model", scope.models), ("model_version", scope.model_versions), ("key", scope.keys)):
        if values:
            conditions.append(f"{column} IN {{{column}s:Array(String)}}")
            parameters[f"{column}s"] = list(values)
    if scope.sources:
        conditions.append("CAST(source, 'String') IN {sources:Array(String)}")
        parameters["sources"] = [source_name(source) for source in scope.sources]
    conditions += time_range(time_column, scope.start_time, scope.end_time, parameters)
    return conditions, parameters


def _export_query(
    export_filter: ExportFilter, after: PageCursor | None, before: datetime, limit: int
) -> tuple[str, dict[str, Any]]:
    """A page of the time-ordered copy: its primary key (project, create_time, ...) limits the read
    to the rows after the cursor."""
    conditions, parameters = _scope_conditions(export_filter.scope, "create_time")
    if export_filter.only_with_correction:
        conditions.append("correction != ''")
    if export_filter.only_with_comment:
        conditions.append("comment != ''")
    conditions.append("create_time < fromUnixTimestamp64Micro({before_us:Int64}, 'UTC')")
    parameters["before_us"] = micros_since_epoch(before)
    if after is not None:
        # The plain range lets the primary key skip what is before the cursor; the tuple is exact.
        conditions.append("create_time >= fromUnixTimestamp64Micro({after_us:Int64}, 'UTC')")
        conditions.append(
            "(create_time, feedback_id) > (fromUnixTimestamp64Micro({after_us:Int64}, 'UTC'), {after_id:String})"
        )
        parameters["after_us"] = after.create_time_us
        parameters["after_id"] = after.feedback_id
    parameters["limit"] = limit
    sql = (
        f"SELECT {SELECT_LIST} FROM {EXPORT_TABLE} FINAL WHERE {' AND '.join(conditions)} "
        "ORDER BY create_time, feedback_id LIMIT {limit:UInt32}"
    )
    return sql, parameters


Segment = tuple[str, datetime | None, datetime | None]  # grain, first bucket (None: any), end (None: any)


def _floor(moment: datetime, grain: str) -> datetime:
    if grain == "minute":
        return moment.replace(second=0, microsecond=0)
    if grain == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil(moment: datetime, grain: str) -> datetime:
    floor = _floor(moment, grain)
    return floor if floor == moment else floor + _GRAIN_WIDTHS[grain]


def rollup_segments(start: datetime | None, end: datetime | None, grains: Sequence[str]) -> list[Segment]:
    """The buckets that make up [start, end) (None: unbounded), coarsest first: the whole buckets of
    ``grains[0]`` inside the range, then the edges left on either side from the finer grains, recursively.

    A minute bucket counts when it starts in the range (as aggregates always have): the bounds are
    rounded up to whole minutes first. With (day, hour, minute) a range is at most 2 x (23 + 59) fine
    buckets per group besides its days, whatever its span.
    """
    start = None if start is None else _ceil(start, "minute")
    end = None if end is None else _ceil(end, "minute")
    return _segments(start, end, grains)


def _segments(start: datetime | None, end: datetime | None, grains: Sequence[str]) -> list[Segment]:
    grain, finer = grains[0], grains[1:]
    if start is not None and end is not None and start >= end:
        return []
    if not finer:
        return [(grain, start, end)]
    low = None if start is None else _ceil(start, grain)
    high = None if end is None else _floor(end, grain)
    if low is not None and high is not None and low >= high:
        return _segments(start, end, finer)  # no whole bucket of this grain inside
    before = _segments(start, low, finer) if start is not None else []
    after = _segments(high, end, finer) if end is not None else []
    return [*before, (grain, low, high), *after]


def _epoch_s(moment: datetime) -> int:
    return micros_since_epoch(moment) // 1_000_000


def _segment_conditions(segments: Sequence[Segment], parameters: dict[str, Any]) -> str:
    """One disjunct per segment, on the primary key's (grain, bucket); grains are allow-listed names."""
    disjuncts: list[str] = []
    for index, (grain, low, high) in enumerate(segments):
        conditions = [f"grain = '{grain}'"]
        if low is not None:
            conditions.append(f"bucket >= toDateTime({{low_{index}:Int64}}, 'UTC')")
            parameters[f"low_{index}"] = _epoch_s(low)
        if high is not None:
            conditions.append(f"bucket < toDateTime({{high_{index}:Int64}}, 'UTC')")
            parameters[f"high_{index}"] = _epoch_s(high)
        disjuncts.append("(" + " AND ".join(conditions) + ")")
    return "(" + " OR ".join(disjuncts) + ")" if disjuncts else "0"


def _aggregate_query(query: AggregateQuery) -> tuple[str, dict[str, Any]]:
    """One read of feedback_rollups: sums over the segments of the range, the author sketches merged."""
    scope = query.scope
    conditions, parameters = _scope_conditions(dataclasses.replace(scope, start_time=None, end_time=None), "bucket")
    segments = rollup_segments(scope.start_time, scope.end_time, _GRAINS_FOR_BUCKET[query.bucket])
    conditions.append(_segment_conditions(segments, parameters))
    dimensions = [_GROUP_COLUMNS[field] for field in query.group_by]
    if query.bucket is not TimeBucket.NONE:
        dimensions.append(f"{_BUCKET_EXPRESSIONS[query.bucket]} AS bucket_start")
    group_names = [d.rsplit(" AS ", 1)[-1] for d in dimensions]
    selected = ", ".join([*dimensions, ""]) if dimensions else ""
    sql = (
        f"SELECT {selected}sum(feedback_count), sum(thumbs_up), sum(thumbs_down), sum(comments), sum(corrections), "
        "mapFilter((k, n) -> n > 0, sumMap(labels)), mapFilter((k, n) -> n > 0, sumMap(scores)), "
        f"{_MERGED_AUTHORS} "
        f"FROM {ROLLUPS_TABLE} WHERE {' AND '.join(conditions)} "
        + (f"GROUP BY {', '.join(group_names)} " if group_names else "")
        + "HAVING sum(feedback_count) > 0"
        + (f" ORDER BY {', '.join(group_names)}" if group_names else "")
    )
    return sql, parameters


def _score_of(bits: int) -> float:
    value: float = struct.unpack("<d", struct.pack("<Q", bits))[0]
    return value


def _group_counts(query: AggregateQuery, row: Sequence[Any]) -> GroupCounts:
    width = len(query.group_by) + (query.bucket is not TimeBucket.NONE)
    dimension_values = dict(zip(query.group_by, row[: len(query.group_by)], strict=True))
    bucket_start = row[width - 1].replace(tzinfo=UTC) if query.bucket is not TimeBucket.NONE else None
    count, up, down, comments, corrections, labels, scores, authors = row[width:]
    source = dimension_values.get(GroupField.SOURCE)
    key = GroupKey(
        model=dimension_values.get(GroupField.MODEL, ""),
        model_version=dimension_values.get(GroupField.MODEL_VERSION, ""),
        key=dimension_values.get(GroupField.KEY, ""),
        source=None if source is None else source_of(source),
        bucket_start=bucket_start,
    )
    score_counts: dict[float, int] = {}
    for bits, n in scores.items():
        value = _score_of(int(bits))
        score_counts[value] = score_counts.get(value, 0) + int(n)  # 0.0 and -0.0 are one score
    return GroupCounts(
        key=key,
        count=int(count),
        thumbs_up=int(up),
        thumbs_down=int(down),
        comments=int(comments),
        corrections=int(corrections),
        labels={label: int(n) for label, n in labels.items()},
        scores=score_counts,
        distinct_authors=int(authors),
    )


def _list_query(list_filter: FeedbackFilter, after: PageCursor | None, limit: int) -> tuple[str, dict[str, Any]]:
    """SQL and typed parameters of a list page; only fixed SQL fragments, every value a parameter."""
    conditions = ["project = {project:String}"]
    parameters: dict[str, Any] = {"project": list_filter.project, "limit": limit}
    for column in ("trace_id", "model", "model_version", "key", "author"):
        value = getattr(list_filter, column)
        if value:
            conditions.append(f"{column} = {{{column}:String}}")
            parameters[column] = value
    if list_filter.source is not None:
        conditions.append("source = {source:String}")
        parameters["source"] = source_name(list_filter.source)
    conditions += time_range("create_time", list_filter.start_time, list_filter.end_time, parameters)
    if after is not None:
        conditions.append(
            "(create_time, feedback_id) < (fromUnixTimestamp64Micro({after_us:Int64}, 'UTC'), {after_id:String})"
        )
        parameters["after_us"] = after.create_time_us
        parameters["after_id"] = after.feedback_id
    sql = (
        f"SELECT {SELECT_LIST} FROM {TABLE} FINAL WHERE {' AND '.join(conditions)} "
        "ORDER BY create_time DESC, feedback_id DESC LIMIT {limit:UInt32}"
    )
    return sql, parameters
