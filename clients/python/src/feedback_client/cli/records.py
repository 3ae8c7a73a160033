"""Feedback as a flat record, for the CSV and Parquet exports: one column per field, no nesting."""

from __future__ import annotations

from datetime import UTC, datetime

from feedback_client.cli.output import source_name, thumb_name
from feedback_proto.v1 import feedback_pb2

# The columns, in order. Of thumb, score and label at most one is set; the others are empty (null).
COLUMNS = (
    "feedback_id",
    "project",
    "trace_id",
    "span_id",
    "session_id",
    "model",
    "model_version",
    "key",
    "thumb",  # up or down
    "score",
    "label",
    "comment",
    "correction",
    "source",  # user, reviewer, automated or empty
    "author",
    "metadata",
    "create_time",  # UTC
    "update_time",
    "revision",
    "created_by",
    "updated_by",
)

FlatValue = str | float | int | datetime | dict[str, str] | None


def flat_record(feedback: feedback_pb2.Feedback) -> dict[str, FlatValue]:
    """The feedback's fields under COLUMNS, as Python values (None for an unset value kind)."""
    kind = feedback.WhichOneof("value")
    return {
        "feedback_id": feedback.feedback_id,
        "project": feedback.project,
        "trace_id": feedback.trace_id,
        "span_id": feedback.span_id,
        "session_id": feedback.session_id,
        "model": feedback.model,
        "model_version": feedback.model_version,
        "key": feedback.key,
        "thumb": thumb_name(feedback.thumb) if kind == "thumb" else None,
        "score": feedback.score if kind == "score" else None,
        "label": feedback.label if kind == "label" else None,
        "comment": feedback.comment,
        "correction": feedback.correction,
        "source": source_name(feedback.source),
        "author": feedback.author,
        "metadata": dict(feedback.metadata),
        "create_time": feedback.create_time.ToDatetime(tzinfo=UTC),
        "update_time": feedback.update_time.ToDatetime(tzinfo=UTC),
        "revision": feedback.revision,
        "created_by": feedback.created_by,
        "updated_by": feedback.updated_by,
    }
