"""UpdateFeedback's field mask (AIP-134): which fields may change and how a mask applies."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from feedback_service.domain.model import Feedback, FeedbackInput, ValueKind
from feedback_service.domain.validation import (
    ViolationCollector,
    check_content,
    check_metadata,
    validated_value,
)

VALUE_PATHS = frozenset({"thumb", "score", "label"})
MUTABLE_PATHS = VALUE_PATHS | {"comment", "correction", "metadata"}
WILDCARD = "*"


def _paths_set_in(draft: FeedbackInput) -> set[str]:
    """AIP-134: an empty mask means every mutable field the request sets."""
    paths: set[str] = set()
    if draft.value_kind is not ValueKind.NONE:
        paths.add("thumb")
    if draft.comment:
        paths.add("comment")
    if draft.correction:
        paths.add("correction")
    if draft.metadata:
        paths.add("metadata")
    return paths


def apply_update(current: Feedback, draft: FeedbackInput, mask: Sequence[str], now: datetime) -> Feedback:
    """The next revision of ``current`` with the masked fields taken from ``draft``.

    Raises InvalidArgumentError naming the bad mask path or field.
    """
    found = ViolationCollector("feedback")
    mask_errors = ViolationCollector()
    if WILDCARD in mask:
        paths = set(MUTABLE_PATHS)
    elif mask:
        paths = set(mask)
        for path in sorted(paths - MUTABLE_PATHS):
            mask_errors.add(
                "update_mask",
                f"cannot update {path!r}: updatable fields are {', '.join(sorted(MUTABLE_PATHS))} or '*'",
            )
    else:
        paths = _paths_set_in(draft)
        if not paths:
            mask_errors.add("update_mask", "is empty and the request sets no updatable field: nothing to update")
    mask_errors.raise_if_any()

    value = validated_value(draft, found) if paths & VALUE_PATHS else current.value
    comment = draft.comment if "comment" in paths else current.comment
    correction = draft.correction if "correction" in paths else current.correction
    metadata = dict(draft.metadata) if "metadata" in paths else current.metadata
    if "metadata" in paths:
        check_metadata(metadata, found)
    check_content(value, comment, correction, found)
    found.raise_if_any()
    return dataclasses.replace(
        current,
        value=value,
        comment=comment,
        correction=correction,
        metadata=metadata,
        update_time=now,
        revision=current.revision + 1,
    )
