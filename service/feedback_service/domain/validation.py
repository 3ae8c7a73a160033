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
from feedback_service.domain.model import Feedback, FeedbackInput, FeedbackValue, Source, Thumb, ValueKind

MAX_FEEDBACK_ID = 128
MAX_TRACE_ID = 128
MAX_SPAN_ID = 128
MAX_SESSION_ID = 128
MAX_MODEL = 256
MAX_MODEL_VERSION = 128
MAX_KEY = 64
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
_SOURCES = frozenset(int(source) for source in Source)


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


def _normalize_span_id(span_id: str) -> str:
    return span_id.lower() if _HEX16.fullmatch(span_id) else span_id


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


def validate_new_feedback(
    draft: FeedbackInput, *, now: datetime, actor: str = "", prefix: str = "feedback"
) -> Feedback:
    """Check a feedback to be created and return it normalised as revision 1 created ``now``;
    raise InvalidArgumentError otherwise. An empty feedback_id is replaced by a fresh UUID.
    """
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
    return Feedback(
        project=draft.project,
        feedback_id=draft.feedback_id or str(uuid.uuid4()),
        trace_id=normalize_trace_id(draft.trace_id),
        span_id=_normalize_span_id(draft.span_id),
        session_id=draft.session_id,
        model=draft.model,
        model_version=draft.model_version,
        key=draft.key,
        value=value,
        comment=draft.comment,
        correction=draft.correction,
        source=Source(draft.source),
        author=draft.author,
        metadata=dict(draft.metadata),
        create_time=now,
        update_time=now,
        revision=1,
        created_by=actor,
        updated_by=actor,
    )
