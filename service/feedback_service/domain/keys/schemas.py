"""Feedback key schemas: what a key means and which values it takes; feedback is checked against them.

Keys without a schema stay free-form, so a product app can send feedback with no set-up. A key with
a schema constrains its feedback's value kind (and range, step or labels); an archived key takes no
new feedback.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from feedback_service.domain.errors import KeyArchivedError
from feedback_service.domain.model import Feedback, ValueKind
from feedback_service.domain.validation import ViolationCollector, check_key, check_project

MAX_DESCRIPTION = 2_000
MAX_LABELS = 100
MAX_LABEL = 256
# Scores on a step grid are compared with this relative tolerance: 0.1 + 0.2 is on a 0.1 grid.
_STEP_TOLERANCE = 1e-9
UPDATABLE_FIELDS = ("description", "higher_is_better", "score_min", "score_max", "score_step", "labels")


class KeyKind(enum.IntEnum):
    """Numbers match feedback.v1.FeedbackKeyKind."""

    UNSPECIFIED = 0
    THUMBS = 1
    SCORE = 2
    LABEL = 3
    TEXT = 4


@dataclass(frozen=True, slots=True)
class KeySchema:
    project: str
    name: str
    kind: KeyKind
    description: str = ""
    higher_is_better: bool = False
    score_min: float = 0.0
    score_max: float = 0.0
    score_step: float = 0.0
    labels: tuple[str, ...] = ()
    archived: bool = False
    create_time: datetime | None = None
    update_time: datetime | None = None


def validate_schema(schema: KeySchema, prefix: str = "feedback_key") -> None:
    """Raise InvalidArgumentError naming every broken rule of a key definition."""
    found = ViolationCollector(prefix)
    check_project(schema.project, found)
    check_key(schema.name, found, name="name")
    if schema.kind not in (KeyKind.THUMBS, KeyKind.SCORE, KeyKind.LABEL, KeyKind.TEXT):
        found.add("kind", "is required: THUMBS, SCORE, LABEL or TEXT")
    if len(schema.description) > MAX_DESCRIPTION:
        found.add("description", f"must be at most {MAX_DESCRIPTION} characters")
    if schema.kind is KeyKind.SCORE:
        _check_score_range(schema, found)
    elif schema.score_min or schema.score_max or schema.score_step:
        found.add("score_min", "score_min, score_max and score_step apply to SCORE keys only")
    if schema.kind is KeyKind.LABEL:
        _check_labels(schema.labels, found)
    elif schema.labels:
        found.add("labels", "apply to LABEL keys only")
    found.raise_if_any()


def _check_score_range(schema: KeySchema, found: ViolationCollector) -> None:
    bounds = (schema.score_min, schema.score_max, schema.score_step)
    if not all(math.isfinite(b) for b in bounds):
        found.add("score_min", "score_min, score_max and score_step must be finite numbers")
        return
    if schema.score_max <= schema.score_min:
        found.add("score_max", f"must be greater than score_min ({schema.score_min:g})")
    if schema.score_step < 0:
        found.add("score_step", "must be 0 (any number) or positive")
    elif schema.score_step > schema.score_max - schema.score_min > 0:
        found.add("score_step", "must not exceed score_max - score_min")


def _check_labels(labels: Sequence[str], found: ViolationCollector) -> None:
    if not labels:
        found.add("labels", "a LABEL key needs at least one allowed label")
    if len(labels) > MAX_LABELS:
        found.add("labels", f"must hold at most {MAX_LABELS} labels")
    if len(set(labels)) != len(labels):
        found.add("labels", "must not repeat a label")
    for position, label in enumerate(labels):
        if not 1 <= len(label) <= MAX_LABEL:
            found.add(f"labels[{position}]", f"must be 1 to {MAX_LABEL} characters")


def check_against_schema(feedback: Feedback, schema: KeySchema | None, found: ViolationCollector) -> None:
    """Add a violation (field named as in Feedback) for each rule of ``schema`` the feedback breaks.

    Raises FailedPreconditionError for an archived key: the request is fine, the key is not.
    """
    if schema is None:
        return
    if schema.archived:
        raise KeyArchivedError(
            f"feedback key {schema.name!r} is archived in project {schema.project!r}: it takes no new feedback"
        )
    value = feedback.value
    expected = {KeyKind.THUMBS: ValueKind.THUMB, KeyKind.SCORE: ValueKind.SCORE, KeyKind.LABEL: ValueKind.LABEL}
    if schema.kind is KeyKind.TEXT:
        if value.kind is not ValueKind.NONE:
            found.add(
                value.kind.name.lower(), f"key {schema.name!r} takes free text only: send a comment or correction"
            )
        elif not (feedback.comment or feedback.correction):
            found.add("comment", f"key {schema.name!r} takes free text: a comment or a correction is required")
        return
    if value.kind is ValueKind.NONE:
        return  # a comment or correction alone is fine on any key
    wanted = expected[schema.kind]
    if value.kind is not wanted:
        found.add(value.kind.name.lower(), f"key {schema.name!r} takes a {wanted.name.lower()} value")
    elif schema.kind is KeyKind.SCORE:
        _check_score(value.score, schema, found)
    elif schema.kind is KeyKind.LABEL and value.label not in schema.labels:
        shown = ", ".join(schema.labels[:10]) + (", ..." if len(schema.labels) > 10 else "")
        found.add("label", f"{value.label!r} is not a label of key {schema.name!r} (allowed: {shown})")


def _check_score(score: float, schema: KeySchema, found: ViolationCollector) -> None:
    if not schema.score_min <= score <= schema.score_max:
        found.add(
            "score",
            f"{score:g} is outside the range of key {schema.name!r}: {schema.score_min:g} to {schema.score_max:g}",
        )
        return
    if schema.score_step > 0:
        steps = (score - schema.score_min) / schema.score_step
        if not math.isclose(steps, round(steps), rel_tol=_STEP_TOLERANCE, abs_tol=_STEP_TOLERANCE):
            found.add(
                "score",
                f"{score:g} is not on the grid of key {schema.name!r}: "
                f"{schema.score_min:g} plus a multiple of {schema.score_step:g}",
            )


def apply_key_update(current: KeySchema, change: KeySchema, mask: Sequence[str], now: datetime) -> KeySchema:
    """The key after an update; ``mask`` empty means every updatable field the change sets."""
    paths = list(mask) or [name for name in UPDATABLE_FIELDS if _is_set(change, name)]
    found = ViolationCollector("update_mask")
    for path in paths:
        if path not in UPDATABLE_FIELDS:
            found.add("paths", f"{path!r} cannot be updated; updatable: {', '.join(UPDATABLE_FIELDS)}")
    if change.kind not in (KeyKind.UNSPECIFIED, current.kind):
        found.add("paths", "the kind of a key cannot change; create a new key instead")
    found.raise_if_any()
    changes: dict[str, Any] = {path: getattr(change, path) for path in paths}
    updated = dataclasses.replace(current, **changes, update_time=now)
    validate_schema(updated)
    return updated


def _is_set(schema: KeySchema, name: str) -> bool:
    return bool(getattr(schema, name))
