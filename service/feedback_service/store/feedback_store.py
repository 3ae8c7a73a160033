"""The feedback store over ClickHouse: creates through the micro-batcher, typed-parameter reads."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from clickhouse_connect.driver.client import Client

from feedback_service.domain.listing import FeedbackFilter, PageCursor, micros_since_epoch
from feedback_service.domain.model import Feedback
from feedback_service.domain.ports import CreateOutcome, CreateStatus, NewFeedback
from feedback_service.store.batcher import MicroBatcher
from feedback_service.store.engine import ClickHouseEngine
from feedback_service.store.rows import COLUMN_NAMES, COLUMN_TYPES, SELECT_LIST, TABLE, StoredRow, source_name, to_row

# Latest revision per id, tombstones included, straight from the primary key:
# correct before merges without FINAL.
_LATEST_BY_ID = (
    f"SELECT {SELECT_LIST} FROM {TABLE} "
    "WHERE project = {project:String} AND feedback_id IN {ids:Array(String)} "
    "ORDER BY revision DESC LIMIT 1 BY feedback_id"
)
_FIRST_FINGERPRINT = (
    f"SELECT create_fingerprint FROM {TABLE} "
    "WHERE project = {project:String} AND feedback_id = {feedback_id:String} "
    "ORDER BY revision ASC LIMIT 1"
)


@dataclass(frozen=True, slots=True)
class BatchingConfig:
    """Micro-batcher bounds for creates."""

    max_rows: int = 10_000
    max_delay_s: float = 0.002
    max_queued_rows: int = 200_000


class ClickHouseFeedbackStore:
    """Implements feedback_service.domain.ports.FeedbackStore."""

    def __init__(self, engine: ClickHouseEngine, batching: BatchingConfig | None = None) -> None:
        batching = batching or BatchingConfig()
        self._engine = engine
        self.batcher: MicroBatcher[NewFeedback, CreateOutcome] = MicroBatcher(
            self._flush_creates,
            max_rows=batching.max_rows,
            max_delay_s=batching.max_delay_s,
            max_queued_rows=batching.max_queued_rows,
        )

    def start(self) -> None:
        self.batcher.start()

    async def close(self) -> None:
        """Flush queued creates; the engine is closed by its owner."""
        await self.batcher.close()

    async def create(self, items: Sequence[NewFeedback]) -> list[CreateOutcome]:
        return await self.batcher.submit(items)

    async def get(self, project: str, feedback_id: str) -> Feedback | None:
        latest = await self._engine.run(partial(_latest_rows, keys=[(project, feedback_id)]))
        row = latest.get((project, feedback_id))
        return None if row is None or row.deleted else row.feedback

    async def list_feedback(self, list_filter: FeedbackFilter, after: PageCursor | None, limit: int) -> list[Feedback]:
        sql, parameters = _list_query(list_filter, after, limit)
        result = await self._engine.run(lambda client: client.query(sql, parameters=parameters).result_rows)
        return [StoredRow(row).feedback for row in result]

    async def write_revision(self, feedback: Feedback, *, deleted: bool) -> None:
        await self._engine.run(partial(_write_revision, feedback=feedback, deleted=deleted))

    async def _flush_creates(self, items: list[NewFeedback]) -> list[CreateOutcome]:
        return await self._engine.run(partial(_create_rows, items=items))


def _insert(client: Client, rows: list[list[Any]]) -> None:
    client.insert(TABLE, rows, column_names=COLUMN_NAMES, column_type_names=COLUMN_TYPES)


def _latest_rows(client: Client, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], StoredRow]:
    ids_by_project: dict[str, list[str]] = defaultdict(list)
    for project, feedback_id in keys:
        ids_by_project[project].append(feedback_id)
    latest: dict[tuple[str, str], StoredRow] = {}
    for project, ids in ids_by_project.items():
        for raw in client.query(_LATEST_BY_ID, parameters={"project": project, "ids": ids}).result_rows:
            row = StoredRow(raw)
            latest[(project, row.feedback.feedback_id)] = row
    return latest


@dataclass(frozen=True, slots=True)
class _Prior:
    feedback: Feedback
    fingerprint: str
    deleted: bool


def _create_rows(client: Client, items: Sequence[NewFeedback]) -> list[CreateOutcome]:
    """Insert the items whose ids are new; report the others as retries or conflicts.

    Runs on the batcher's single worker, so no other create can slip in between
    the lookup and the insert in this process.
    """
    stored = _latest_rows(client, [(i.feedback.project, i.feedback.feedback_id) for i in items if i.check_existing])
    priors = {key: _Prior(row.feedback, row.fingerprint, row.deleted) for key, row in stored.items()}
    outcomes: list[CreateOutcome] = []
    rows: list[list[Any]] = []
    for item in items:
        key = (item.feedback.project, item.feedback.feedback_id)
        prior = priors.get(key)
        if prior is None:
            rows.append(to_row(item.feedback, fingerprint=item.fingerprint))
            priors[key] = _Prior(item.feedback, item.fingerprint, deleted=False)
            outcomes.append(CreateOutcome(CreateStatus.CREATED, item.feedback))
        elif prior.deleted:
            outcomes.append(CreateOutcome(CreateStatus.DELETED, prior.feedback))
        elif prior.fingerprint == item.fingerprint:
            outcomes.append(CreateOutcome(CreateStatus.EXISTING, prior.feedback))
        else:
            outcomes.append(CreateOutcome(CreateStatus.CONFLICT, prior.feedback))
    if rows:
        _insert(client, rows)
    return outcomes


def _write_revision(client: Client, feedback: Feedback, deleted: bool) -> None:
    # The create fingerprint never changes, so later retries of the create still match.
    parameters = {"project": feedback.project, "feedback_id": feedback.feedback_id}
    fingerprint = client.query(_FIRST_FINGERPRINT, parameters=parameters).result_rows[0][0]
    _insert(client, [to_row(feedback, fingerprint=fingerprint, deleted=deleted)])


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
    if list_filter.start_time is not None:
        conditions.append("create_time >= fromUnixTimestamp64Micro({start_us:Int64}, 'UTC')")
        parameters["start_us"] = micros_since_epoch(list_filter.start_time)
    if list_filter.end_time is not None:
        conditions.append("create_time < fromUnixTimestamp64Micro({end_us:Int64}, 'UTC')")
        parameters["end_us"] = micros_since_epoch(list_filter.end_time)
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
