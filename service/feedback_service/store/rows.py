"""Feedback <-> rows of the ``feedback`` table, and rows -> ClickHouse's Native format (:class:`RowBlock`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.common import write_leb128
from clickhouse_connect.driver.insert import InsertContext

from feedback_service.domain.model import NO_VALUE, THUMB_VALUES, Feedback, FeedbackValue, Source, Thumb, ValueKind

TABLE = "feedback"

# (column, ClickHouse type) in insert order; types given so inserts skip a DESCRIBE.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("project", "LowCardinality(String)"),
    ("feedback_id", "String"),
    ("trace_id", "String"),
    ("span_id", "String"),
    ("session_id", "String"),
    ("model", "LowCardinality(String)"),
    ("model_version", "LowCardinality(String)"),
    ("key", "LowCardinality(String)"),
    ("value_kind", "Enum8('none' = 0, 'thumb' = 1, 'score' = 2, 'label' = 3)"),
    ("thumb", "Enum8('unspecified' = 0, 'up' = 1, 'down' = 2)"),
    ("score", "Float64"),
    ("label", "String"),
    ("comment", "String"),
    ("correction", "String"),
    ("source", "Enum8('unspecified' = 0, 'user' = 1, 'reviewer' = 2, 'automated' = 3)"),
    ("author", "String"),
    ("metadata", "Map(String, String)"),
    ("create_time", "DateTime64(6, 'UTC')"),
    ("update_time", "DateTime64(6, 'UTC')"),
    ("revision", "UInt64"),
    ("is_deleted", "UInt8"),
    ("create_fingerprint", "String"),
    # What the replaced revision contributed to the aggregates (migration 0002).
    ("prev_exists", "UInt8"),
    ("prev_value_kind", "Enum8('none' = 0, 'thumb' = 1, 'score' = 2, 'label' = 3)"),
    ("prev_thumb", "Enum8('unspecified' = 0, 'up' = 1, 'down' = 2)"),
    ("prev_score", "Float64"),
    ("prev_label", "String"),
    ("prev_has_comment", "UInt8"),
    ("prev_has_correction", "UInt8"),
    # Audit (migration 0004).
    ("created_by", "String"),
    ("updated_by", "String"),
)
COLUMN_NAMES = [name for name, _ in COLUMNS]
COLUMN_TYPES = [kind for _, kind in COLUMNS]
# What reads select: the record plus the flags the store itself needs (not the prev_* columns).
SELECT_LIST = ", ".join([*COLUMN_NAMES[: COLUMN_NAMES.index("create_fingerprint") + 1], "created_by", "updated_by"])
_NO_PREV = [0, "none", "unspecified", 0.0, "", 0, 0]

_VALUE_KIND_NAMES = {
    ValueKind.NONE: "none",
    ValueKind.THUMB: "thumb",
    ValueKind.SCORE: "score",
    ValueKind.LABEL: "label",
}
_THUMB_NAMES = {Thumb.UNSPECIFIED: "unspecified", Thumb.UP: "up", Thumb.DOWN: "down"}
_SOURCE_NAMES = {
    Source.UNSPECIFIED: "unspecified",
    Source.USER: "user",
    Source.REVIEWER: "reviewer",
    Source.AUTOMATED: "automated",
}
_VALUE_KINDS = {name: kind for kind, name in _VALUE_KIND_NAMES.items()}
_THUMBS = {name: thumb for thumb, name in _THUMB_NAMES.items()}
_SOURCES = {name: source for source, name in _SOURCE_NAMES.items()}


def source_name(source: Source) -> str:
    return _SOURCE_NAMES[source]


def source_of(name: str) -> Source:
    return _SOURCES[name]


def _prev_columns(prev: Feedback | None) -> list[Any]:
    if prev is None:
        return _NO_PREV
    value = prev.value
    return [
        1,
        _VALUE_KIND_NAMES[value.kind],
        _THUMB_NAMES[value.thumb],
        value.score,
        value.label,
        int(bool(prev.comment)),
        int(bool(prev.correction)),
    ]


def to_row(feedback: Feedback, *, fingerprint: str, deleted: bool = False, prev: Feedback | None = None) -> list[Any]:
    """A row of the feedback table; ``prev`` is the current revision this row replaces, if any."""
    value = feedback.value
    return [
        feedback.project,
        feedback.feedback_id,
        feedback.trace_id,
        feedback.span_id,
        feedback.session_id,
        feedback.model,
        feedback.model_version,
        feedback.key,
        _VALUE_KIND_NAMES[value.kind],
        _THUMB_NAMES[value.thumb],
        value.score,
        value.label,
        feedback.comment,
        feedback.correction,
        _SOURCE_NAMES[feedback.source],
        feedback.author,
        dict(feedback.metadata),
        feedback.create_time,
        feedback.update_time,
        feedback.revision,
        1 if deleted else 0,
        fingerprint,
        *_prev_columns(prev),
        feedback.created_by,
        feedback.updated_by,
    ]


_TYPES = [get_from_name(name) for name in COLUMN_TYPES]
# Each column's header in a Native block: its name and type, length-prefixed.
_HEADERS: list[bytes] = []
for _name, _type in zip(COLUMN_NAMES, _TYPES, strict=True):
    _header = bytearray()
    for _part in (_name.encode(), _type.insert_name.encode()):
        write_leb128(len(_part), _header)
        _header += _part
    _HEADERS.append(bytes(_header))


class RowBlock:
    """Rows of the feedback table in ClickHouse's Native format, encoded once.

    A flush's rows go into ``feedback`` and, later, into ``feedback_changes`` (the deriver's insert): both
    send these same bytes (``client.raw_insert(..., fmt="Native")``), so the rows are serialised once,
    not once per insert. Several blocks joined are one Native stream (the deriver's insert of several
    flushes), which the engine squashes into one part per table as it does any insert.
    """

    __slots__ = ("count", "native")

    def __init__(self, native: bytes, count: int) -> None:
        self.native = native
        self.count = count

    def __len__(self) -> int:
        return self.count

    @classmethod
    def of_columns(cls, columns: Sequence[Sequence[Any]]) -> RowBlock:
        """Columns in COLUMNS order, of one length: enums and times may be given as their numbers
        (enum values, microseconds since the epoch), as :func:`feedback_service.store.write_batch` does."""
        return cls._encode(columns, column_oriented=True)

    @classmethod
    def of_rows(cls, rows: Sequence[Sequence[Any]]) -> RowBlock:
        """Rows as :func:`to_row` makes them."""
        return cls._encode(rows, column_oriented=False)

    def insert_into(self, client: Client, table: str, settings: Mapping[str, Any]) -> None:
        """Insert these rows into ``table`` (``feedback`` or a table made AS feedback)."""
        client.raw_insert(table, COLUMN_NAMES, insert_block=self.native, settings=dict(settings), fmt="Native")

    @classmethod
    def join(cls, blocks: Iterable[RowBlock]) -> RowBlock:
        blocks = list(blocks)
        if len(blocks) == 1:
            return blocks[0]
        return cls(b"".join(block.native for block in blocks), sum(block.count for block in blocks))

    @classmethod
    def _encode(cls, data: Sequence[Sequence[Any]], *, column_oriented: bool) -> RowBlock:
        if not data:
            return cls(b"", 0)
        # clickhouse-connect's own column writers (C where it has them), as client.insert() uses them,
        # minus the per-insert parts this does once: type lookup, column headers, the INSERT prefix.
        # One block (block_size = every row): one header, and no sampling of the data to size blocks.
        rows = len(data[0]) if column_oriented else len(data)
        context = InsertContext(
            TABLE, COLUMN_NAMES, _TYPES, data=data, column_oriented=column_oriented, block_size=rows
        )
        output = bytearray()
        for block in context.next_block():
            write_leb128(block.column_count, output)
            write_leb128(block.row_count, output)
            for name, header, kind, column in zip(COLUMN_NAMES, _HEADERS, _TYPES, block.column_data, strict=True):
                output += header
                context.start_column(name)
                kind.write_column(column, output, context)
        return cls(bytes(output), context.row_count)


def _utc(moment: datetime) -> datetime:
    # clickhouse-connect returns DateTime64(6, 'UTC') values as naive UTC datetimes.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_THUMB_VALUES = {name: THUMB_VALUES[thumb] for name, thumb in _THUMBS.items()}


def _value_from(kind: str, thumb: str, score: float, label: str) -> FeedbackValue:
    if kind == "thumb":
        return _THUMB_VALUES[thumb]
    if kind == "score":
        return FeedbackValue(ValueKind.SCORE, Thumb.UNSPECIFIED, score)
    if kind == "label":
        return FeedbackValue(ValueKind.LABEL, Thumb.UNSPECIFIED, 0.0, label)
    return NO_VALUE


class StoredRow:
    """A row read back: the record, whether it is a tombstone, and its create fingerprint.

    Reads of whole pages (exports, lists) build one per row, so this is kept lean: positional
    arguments in Feedback's field order, shared value objects, and the driver's fresh dict for
    the metadata map (the store round-trip tests check every field).
    """

    __slots__ = ("deleted", "feedback", "fingerprint")

    def __init__(self, row: Sequence[Any]) -> None:
        (
            project,
            feedback_id,
            trace_id,
            span_id,
            session_id,
            model,
            model_version,
            key,
            value_kind,
            thumb,
            score,
            label,
            comment,
            correction,
            source,
            author,
            metadata,
            create_time,
            update_time,
            revision,
            is_deleted,
            fingerprint,
            created_by,
            updated_by,
        ) = row
        self.feedback = Feedback(
            project,
            feedback_id,
            trace_id,
            key,
            _value_from(value_kind, thumb, score, label),
            span_id,
            session_id,
            model,
            model_version,
            comment,
            correction,
            _SOURCES[source],
            author,
            metadata,
            _utc(create_time),
            _utc(update_time),
            revision,
            created_by,
            updated_by,
        )
        self.deleted = bool(is_deleted)
        self.fingerprint: str = fingerprint
