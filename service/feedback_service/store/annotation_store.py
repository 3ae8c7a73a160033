"""Annotation queues, items and claims in ClickHouse, and the feedback reads that queues and agreement need."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from feedback_service.domain.annotation.queues import (
    Claim,
    ClaimState,
    ContentFormat,
    FeedbackSelector,
    ItemContent,
    Queue,
    QueueItem,
    Rating,
    item_id_of,
)
from feedback_service.domain.model import Source, Thumb
from feedback_service.store.engine import ClickHouseEngine
from feedback_service.store.query_params import time_range

_QUEUE_COLUMNS = [
    "project", "queue_id", "name", "keys", "instructions", "reviewers", "reviewers_per_item", "lease_ms", "create_time",
    "trace_url_template",
]  # fmt: skip
_ITEM_COLUMNS = [
    "project", "queue_id", "item_id", "trace_id", "span_id", "model", "model_version", "add_time",
    "content_format", "content_input", "content_output", "content_context",
]  # fmt: skip
_CLAIM_COLUMNS = [
    "project", "queue_id", "item_id", "reviewer", "claim_id", "state", "lease_expire_time", "update_time",
]  # fmt: skip
_IN_QUEUE = "project = {project:String} AND queue_id = {queue_id:String}"
# Claims read every item of a queue: without content, which only the one claimed item needs.
_SELECT_ITEMS = "SELECT item_id, trace_id, span_id, model, model_version, add_time FROM queue_items FINAL"
_SELECT_ITEM_WITH_CONTENT = (
    "SELECT item_id, trace_id, span_id, model, model_version, add_time, "
    "content_format, content_input, content_output, content_context FROM queue_items FINAL"
)
_FORMAT_NAMES = {ContentFormat.PLAIN_TEXT: "plain", ContentFormat.MARKDOWN: "markdown", ContentFormat.JSON: "json"}
_FORMATS = {name: kind for kind, name in _FORMAT_NAMES.items()}
_SOURCE_NAMES = {Source.USER: "user", Source.REVIEWER: "reviewer", Source.AUTOMATED: "automated"}
_THUMB_NAMES = {Thumb.UP: "up", Thumb.DOWN: "down"}


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)


def _queue_of(row: Sequence[Any]) -> Queue:
    project, queue_id, name, keys, instructions, reviewers, per_item, lease_ms, created, trace_url_template = row
    return Queue(
        project=project,
        queue_id=queue_id,
        name=name,
        keys=tuple(keys),
        instructions=instructions,
        reviewers=tuple(reviewers),
        reviewers_per_item=int(per_item),
        lease=timedelta(milliseconds=int(lease_ms)),
        create_time=_utc(created),
        trace_url_template=trace_url_template,
    )


def _item_of(row: Sequence[Any]) -> QueueItem:
    item_id, trace_id, span_id, model, model_version, added, *content = row
    return QueueItem(
        item_id=item_id,
        trace_id=trace_id,
        span_id=span_id,
        model=model,
        model_version=model_version,
        add_time=_utc(added),
        content=_content_of(*content) if content else None,
    )


def _content_of(kind: str, input_text: str, output: str, context: dict[str, str]) -> ItemContent | None:
    if kind == "none":
        return None
    return ItemContent(input=input_text, output=output, context=dict(context), format=_FORMATS[kind])


def _item_row(project: str, queue_id: str, item: QueueItem) -> list[Any]:
    """The row of ``_ITEM_COLUMNS``; an item without content has format 'none'."""
    content = item.content
    kind, input_text, output, context = (
        ("none", "", "", {})
        if content is None
        else (_FORMAT_NAMES[content.format], content.input, content.output, dict(content.context))
    )
    return [
        project, queue_id, item.item_id, item.trace_id, item.span_id, item.model, item.model_version, item.add_time,
        kind, input_text, output, context,
    ]  # fmt: skip


def _claim_of(row: Sequence[Any]) -> Claim:
    queue_id, item_id, reviewer, claim_id, state, expire, updated = row
    return Claim(queue_id, item_id, reviewer, claim_id, ClaimState(state), _utc(expire), _utc(updated))


class ClickHouseAnnotationStore:
    def __init__(self, engine: ClickHouseEngine) -> None:
        self._engine = engine

    async def _rows(self, sql: str, parameters: dict[str, Any]) -> list[Sequence[Any]]:
        result = await self._engine.run(lambda client: client.query(sql, parameters=parameters))
        return list(result.result_rows)

    async def _insert(self, table: str, rows: list[list[Any]], columns: list[str]) -> None:
        if rows:
            await self._engine.run(lambda client: client.insert(table, rows, column_names=columns))

    # ---- queues -----------------------------------------------------------------------------

    async def create_queue(self, queue: Queue) -> None:
        row = [
            queue.project, queue.queue_id, queue.name, list(queue.keys), queue.instructions, list(queue.reviewers),
            queue.reviewers_per_item, int(queue.lease.total_seconds() * 1000), queue.create_time,
            queue.trace_url_template,
        ]  # fmt: skip
        await self._insert("annotation_queues", [row], _QUEUE_COLUMNS)

    async def get_queue(self, project: str, queue_id: str) -> Queue | None:
        rows = await self._rows(
            f"SELECT {', '.join(_QUEUE_COLUMNS)} FROM annotation_queues FINAL WHERE {_IN_QUEUE}",
            {"project": project, "queue_id": queue_id},
        )
        return _queue_of(rows[0]) if rows else None

    async def list_queues(self, project: str) -> list[Queue]:
        rows = await self._rows(
            f"SELECT {', '.join(_QUEUE_COLUMNS)} FROM annotation_queues FINAL WHERE project = {{project:String}} "
            "ORDER BY create_time DESC, queue_id",
            {"project": project},
        )
        return [_queue_of(row) for row in rows]

    # ---- items ------------------------------------------------------------------------------

    async def items(self, project: str, queue_id: str) -> list[QueueItem]:
        """Oldest first: the order items are handed out in."""
        rows = await self._rows(
            f"{_SELECT_ITEMS} WHERE {_IN_QUEUE} ORDER BY add_time, item_id", {"project": project, "queue_id": queue_id}
        )
        return [_item_of(row) for row in rows]

    async def item(self, project: str, queue_id: str, item_id: str) -> QueueItem | None:
        """One item with its content."""
        rows = await self._rows(
            f"{_SELECT_ITEM_WITH_CONTENT} WHERE {_IN_QUEUE} AND item_id = {{item_id:String}}",
            {"project": project, "queue_id": queue_id, "item_id": item_id},
        )
        return _item_of(rows[0]) if rows else None

    async def add_items(self, project: str, queue_id: str, items: Sequence[QueueItem]) -> None:
        rows = [_item_row(project, queue_id, item) for item in items]
        await self._insert("queue_items", rows, _ITEM_COLUMNS)

    async def traces_matching(self, project: str, selector: FeedbackSelector) -> list[QueueItem]:
        """One item per trace and span with current feedback matching ``selector``, newest feedback first."""
        conditions = ["project = {project:String}"]
        parameters: dict[str, Any] = {"project": project, "limit": selector.limit}
        for column in ("model", "model_version", "key"):
            if getattr(selector, column):
                conditions.append(f"{column} = {{{column}:String}}")
                parameters[column] = getattr(selector, column)
        if selector.thumb is not Thumb.UNSPECIFIED:
            conditions.append("value_kind = 'thumb' AND thumb = {thumb:String}")
            parameters["thumb"] = _THUMB_NAMES[selector.thumb]
        if selector.source is not Source.UNSPECIFIED:
            conditions.append("source = {source:String}")
            parameters["source"] = _SOURCE_NAMES[selector.source]
        conditions += time_range("create_time", selector.start_time, selector.end_time, parameters)
        rows = await self._rows(
            "SELECT trace_id, span_id, any(model), any(model_version), max(create_time) AS latest "
            f"FROM feedback FINAL WHERE {' AND '.join(conditions)} "
            "GROUP BY trace_id, span_id ORDER BY latest DESC, trace_id, span_id LIMIT {limit:UInt32}",
            parameters,
        )
        return [
            QueueItem(trace_id=t, span_id=s, model=m, model_version=v, item_id=item_id_of(t, s))
            for t, s, m, v, _ in rows
        ]

    # ---- claims -----------------------------------------------------------------------------

    async def claims(self, project: str, queue_id: str) -> list[Claim]:
        rows = await self._rows(
            f"SELECT {', '.join(_CLAIM_COLUMNS[1:])} FROM queue_claims FINAL WHERE {_IN_QUEUE}",
            {"project": project, "queue_id": queue_id},
        )
        return [_claim_of(row) for row in rows]

    async def put_claim(self, project: str, claim: Claim) -> None:
        row = [
            project, claim.queue_id, claim.item_id, claim.reviewer, claim.claim_id, claim.state.value,
            claim.lease_expire_time, claim.update_time,
        ]  # fmt: skip
        await self._insert("queue_claims", [row], _CLAIM_COLUMNS)

    # ---- agreement --------------------------------------------------------------------------

    async def reviewer_ratings(
        self,
        project: str,
        keys: Sequence[str],
        *,
        queue_id: str = "",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
    ) -> list[Rating]:
        """Current reviewer feedback with a value on ``keys``: one rating per key, trace, span and author."""
        conditions = [
            "project = {project:String}",
            "source = 'reviewer'",
            "author != ''",
            "value_kind != 'none'",
            "key IN {keys:Array(String)}",
        ]
        parameters: dict[str, Any] = {"project": project, "keys": list(keys)}
        if queue_id:
            conditions.append(
                "(trace_id, span_id) IN (SELECT trace_id, span_id FROM queue_items FINAL "
                "WHERE project = {project:String} AND queue_id = {queue_id:String})"
            )
            parameters["queue_id"] = queue_id
        conditions += time_range("create_time", start_time, end_time, parameters)
        # The latest feedback of an author on a unit is their rating (a reviewer may correct themselves).
        rows = await self._rows(
            "SELECT key, trace_id, span_id, author, argMax(value_kind, create_time), argMax(thumb, create_time), "
            "argMax(score, create_time), argMax(label, create_time) "
            f"FROM feedback FINAL WHERE {' AND '.join(conditions)} "
            "GROUP BY key, trace_id, span_id, author",
            parameters,
        )
        return [
            Rating(key=k, unit=(t, s), rater=a, value=_rating_value(kind, thumb, score, label))
            for k, t, s, a, kind, thumb, score, label in rows
        ]


def _rating_value(kind: str, thumb: str, score: float, label: str) -> str | float:
    if kind == "score":
        return float(score)
    return f"thumb:{thumb}" if kind == "thumb" else f"label:{label}"
