"""Every rule a piece of feedback must meet, with the field it names when broken.

Validation collects all violations of a request rather than stopping at the
first, so a caller can fix everything in one round trip. Lengths count Unicode
code points, except metadata values, which are bounded in UTF-8 bytes.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from datetime import datetime

from feedback_service.domain.errors import FieldViolation, InvalidArgumentError
from feedback_service.domain.model import (
    NO_VALUE,
    THUMB_VALUES,
    Feedback,
    FeedbackInput,
    FeedbackValue,
    Source,
    Thumb,
    ValueKind,
)

MAX_FEEDBACK_ID = 128
MAX_TRACE_ID = 128
MAX_SPAN_ID = 128
MAX_SESSION_ID = 128
MAX_MODEL = 256
MAX_MODEL_VERSION = 128
MAX_LABEL = 256
MAX_COMMENT = 10_000
MAX_CORRECTION = 100_000
MAX_AUTHOR = 256
MAX_METADATA_ENTRIES = 64
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE_BYTES = 1024

_PROJECT = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Printable ASCII without spaces: ids travel in URLs, logs and CSV files.
_FEEDBACK_ID = re.compile(r"[\x21-\x7e]{1,128}")
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_HEX16 = re.compile(r"[0-9a-fA-F]{16}")
_ZERO_TRACE_ID = "0" * 32
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Dict lookups: several times cheaper than calling the enum class on the per-item path.
_SOURCE_OF = {int(source): source for source in Source}
_SOURCES = frozenset(_SOURCE_OF)
_VOTE_VALUES = {int(thumb): THUMB_VALUES[thumb] for thumb in (Thumb.UP, Thumb.DOWN)}  # the valid thumbs
# A code point takes at most 4 bytes of UTF-8 (a lone surrogate 3): shorter values need no encoding.
_SAFE_METADATA_VALUE_CHARS = MAX_METADATA_VALUE_BYTES // 4
# Names already found valid, to skip their regex: a batch repeats one project and a few keys. Bounded,
# so a caller cycling through names cannot grow them without limit (past it, the regex decides).
_KNOWN_NAMES_LIMIT = 1024
_known_projects: set[str] = set()
_known_keys: set[str] = set()


class ViolationCollector:
    """Accumulates field violations under a path prefix such as ``feedback``."""

    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix
        self.violations: list[FieldViolation] = []

    def add(self, name: str, description: str) -> None:
        path = f"{self._prefix}.{name}" if self._prefix else name
        self.violations.append(FieldViolation(path, description))

    def raise_if_any(self) -> None:
        if self.violations:
            raise InvalidArgumentError(self.violations)


def check_time_range(
    start: datetime | None,
    end: datetime | None,
    found: ViolationCollector,
    *,
    name: str = "end_time",
    whole_minutes: bool = False,
    names: tuple[str, str] = ("start_time", "end_time"),
) -> None:
    """The one check of a [start, end) range: not empty or inverted, and with ``whole_minutes`` both bounds
    on a minute (aggregates are kept per minute). ``names`` are the bounds' field paths."""
    if whole_minutes:
        for path, moment in zip(names, (start, end), strict=True):
            if moment is not None and (moment.second or moment.microsecond):
                found.add(path, "must be a whole minute: aggregates are kept per minute")
    if start is not None and end is not None and start >= end:
        found.add(name, "must be after start_time (the range is empty or inverted)")


def check_project(project: str, found: ViolationCollector, name: str = "project") -> None:
    if not project:
        found.add(name, "is required")
    elif not _PROJECT.fullmatch(project):
        found.add(name, "must be 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit")


def check_feedback_id(feedback_id: str, found: ViolationCollector, *, required: bool) -> None:
    if not feedback_id:
        if required:
            found.add("feedback_id", "is required")
    elif not _FEEDBACK_ID.fullmatch(feedback_id):
        found.add("feedback_id", f"must be 1-{MAX_FEEDBACK_ID} printable ASCII characters without spaces")


def normalize_trace_id(trace_id: str) -> str:
    """OpenTelemetry 32-hex ids are case-insensitive: store and match them in lower case."""
    return trace_id.lower() if _HEX32.fullmatch(trace_id) else trace_id


def normalize_span_id(span_id: str) -> str:
    """OpenTelemetry 16-hex span ids are case-insensitive: store and match them in lower case."""
    # Most feedback has no span id: skip the regex for it.
    return span_id.lower() if span_id and _HEX16.fullmatch(span_id) else span_id


def _is_known_name(name: str, pattern: re.Pattern[str], known: set[str]) -> bool:
    """Whether ``name`` fully matches ``pattern``, remembering valid names in ``known``."""
    if name in known:
        return True
    if not pattern.fullmatch(name):
        return False
    if len(known) < _KNOWN_NAMES_LIMIT:
        known.add(name)
    return True


def _check_opaque_id(value: str, name: str, limit: int, found: ViolationCollector) -> None:
    if len(value) > limit:
        found.add(name, f"must be at most {limit} characters (got {len(value)})")
    elif _CONTROL.search(value):
        found.add(name, "must not contain control characters")


def _check_length(value: str, name: str, limit: int, found: ViolationCollector) -> None:
    if len(value) > limit:
        found.add(name, f"must be at most {limit} characters (got {len(value)})")


def _check_trace_id(trace_id: str, found: ViolationCollector) -> None:
    if not trace_id:
        found.add("trace_id", "is required")
    elif trace_id == _ZERO_TRACE_ID:
        found.add("trace_id", "must not be the all-zero (invalid) OpenTelemetry trace id")
    else:
        _check_opaque_id(trace_id, "trace_id", MAX_TRACE_ID, found)


def check_key(key: str, found: ViolationCollector, name: str = "key") -> None:
    """A feedback key name: the same rule for feedback and for key schemas."""
    if not key:
        found.add(name, "is required")
    elif not _KEY.fullmatch(key):
        found.add(name, "must be a lower-case identifier: a letter, then letters, digits or '_', at most 64 in all")


def validated_value(draft: FeedbackInput, found: ViolationCollector) -> FeedbackValue:
    kind = draft.value_kind
    if kind is ValueKind.THUMB:
        if draft.thumb not in (Thumb.UP, Thumb.DOWN):
            found.add("thumb", "must be THUMB_UP or THUMB_DOWN")
            return FeedbackValue()
        return FeedbackValue.of_thumb(Thumb(draft.thumb))
    if kind is ValueKind.SCORE:
        if not math.isfinite(draft.score):
            found.add("score", "must be a finite number (not NaN or infinite)")
        return FeedbackValue.of_score(draft.score)
    if kind is ValueKind.LABEL:
        if not draft.label:
            found.add("label", "must not be empty")
        else:
            _check_length(draft.label, "label", MAX_LABEL, found)
        return FeedbackValue.of_label(draft.label)
    return FeedbackValue()


def check_metadata(metadata: Mapping[str, str], found: ViolationCollector) -> None:
    if len(metadata) > MAX_METADATA_ENTRIES:
        found.add("metadata", f"must have at most {MAX_METADATA_ENTRIES} entries (got {len(metadata)})")
        return
    for name, text in sorted(metadata.items()):
        if not name or len(name) > MAX_METADATA_KEY:
            found.add(f"metadata[{name!r}]", f"key must be 1-{MAX_METADATA_KEY} characters")
        elif _CONTROL.search(name):
            found.add(f"metadata[{name!r}]", "key must not contain control characters")
        if len(text.encode("utf-8", "surrogatepass")) > MAX_METADATA_VALUE_BYTES:
            found.add(f"metadata[{name!r}]", f"value must be at most {MAX_METADATA_VALUE_BYTES} bytes of UTF-8")


def check_content(value: FeedbackValue, comment: str, correction: str, found: ViolationCollector) -> None:
    """The rules on what a piece of feedback says, shared by create and update."""
    _check_length(comment, "comment", MAX_COMMENT, found)
    _check_length(correction, "correction", MAX_CORRECTION, found)
    if value.kind is ValueKind.NONE and not comment and not correction:
        found.add("value", "at least one of thumb, score, label, comment or correction must be set")


def _plainly_valid_value(draft: FeedbackInput) -> FeedbackValue | None:
    """The draft's value when the draft plainly meets every rule of validate_new_feedback; None when in doubt.

    The fast path for the common valid item: the same rules as the collecting checks, tested in the
    cheapest way and without naming a violation. It may say None for a valid draft (then the
    collecting checks decide), never a value for an invalid one.
    """
    value = _plain_value(draft)
    if value is None or not _plainly_valid_fields(draft) or not _plainly_valid_metadata(draft.metadata):
        return None
    return value


def _plainly_valid_fields(draft: FeedbackInput) -> bool:
    """The rules on every field but the value and metadata hold (or, rarely, this is unsure).

    ``str.isprintable()`` stands for "no control characters": control characters are never printable.
    """
    trace_id, span_id, session_id, feedback_id = draft.trace_id, draft.span_id, draft.session_id, draft.feedback_id
    return bool(
        trace_id
        and trace_id != _ZERO_TRACE_ID
        and len(trace_id) <= MAX_TRACE_ID
        and trace_id.isprintable()
        and len(span_id) <= MAX_SPAN_ID
        and span_id.isprintable()
        and len(session_id) <= MAX_SESSION_ID
        and session_id.isprintable()
        and len(draft.model) <= MAX_MODEL
        and len(draft.model_version) <= MAX_MODEL_VERSION
        and len(draft.comment) <= MAX_COMMENT
        and len(draft.correction) <= MAX_CORRECTION
        and len(draft.author) <= MAX_AUTHOR
        and draft.source in _SOURCES
        and (not feedback_id or _FEEDBACK_ID.fullmatch(feedback_id))
        and _is_known_name(draft.project, _PROJECT, _known_projects)
        and _is_known_name(draft.key, _KEY, _known_keys)
    )


def _plain_value(draft: FeedbackInput) -> FeedbackValue | None:
    """validated_value() when it finds nothing wrong (the content rules included); else None."""
    kind = draft.value_kind
    if kind is ValueKind.THUMB:
        return _VOTE_VALUES.get(draft.thumb)
    if kind is ValueKind.SCORE:
        return FeedbackValue(ValueKind.SCORE, Thumb.UNSPECIFIED, draft.score) if math.isfinite(draft.score) else None
    if kind is ValueKind.LABEL:
        label = draft.label
        return FeedbackValue(ValueKind.LABEL, Thumb.UNSPECIFIED, 0.0, label) if 0 < len(label) <= MAX_LABEL else None
    return NO_VALUE if draft.comment or draft.correction else None


def _plainly_valid_metadata(metadata: Mapping[str, str]) -> bool:
    """check_metadata() would find nothing (or, rarely, this is unsure)."""
    if len(metadata) > MAX_METADATA_ENTRIES:
        return False
    for name, text in metadata.items():
        if not 0 < len(name) <= MAX_METADATA_KEY or not name.isprintable():
            return False
        if (
            len(text) > _SAFE_METADATA_VALUE_CHARS
            and len(text.encode("utf-8", "surrogatepass")) > MAX_METADATA_VALUE_BYTES
        ):
            return False
    return True


def _checked_value(draft: FeedbackInput, prefix: str) -> FeedbackValue:
    """The draft's value; InvalidArgumentError naming every rule the draft breaks."""
    found = ViolationCollector(prefix)
    check_project(draft.project, found)
    check_feedback_id(draft.feedback_id, found, required=False)
    _check_trace_id(draft.trace_id, found)
    _check_opaque_id(draft.span_id, "span_id", MAX_SPAN_ID, found)
    _check_opaque_id(draft.session_id, "session_id", MAX_SESSION_ID, found)
    _check_length(draft.model, "model", MAX_MODEL, found)
    _check_length(draft.model_version, "model_version", MAX_MODEL_VERSION, found)
    check_key(draft.key, found)
    value = validated_value(draft, found)
    check_content(value, draft.comment, draft.correction, found)
    if draft.source not in _SOURCES:
        found.add("source", f"unknown source {draft.source}")
    _check_length(draft.author, "author", MAX_AUTHOR, found)
    check_metadata(draft.metadata, found)
    found.raise_if_any()
    return value


def validate_new_feedback(
    draft: FeedbackInput, *, now: datetime, actor: str = "", prefix: str = "feedback"
) -> Feedback:
    """Check a feedback to be created and return it normalised as revision 1 created ``now``;
    raise InvalidArgumentError otherwise. An empty feedback_id is replaced by a fresh UUID.
    """
    value = _plainly_valid_value(draft)
    if value is None:
        value = _checked_value(draft, prefix)
    metadata = draft.metadata
    # Positional, in Feedback's field order (tests/test_create_fast_paths.py checks each field): a
    # third cheaper than keywords on this per-item path.
    return Feedback(
        draft.project,
        draft.feedback_id or str(uuid.uuid4()),
        normalize_trace_id(draft.trace_id),
        draft.key,
        value,
        normalize_span_id(draft.span_id),
        draft.session_id,
        draft.model,
        draft.model_version,
        draft.comment,
        draft.correction,
        _SOURCE_OF[draft.source],
        draft.author,
        dict(metadata) if metadata else {},
        now,  # create_time
        now,  # update_time
        1,  # revision
        actor,  # created_by
        actor,  # updated_by
    )
