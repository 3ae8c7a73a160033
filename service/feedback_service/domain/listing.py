"""ListFeedback: its filter, page size rules and opaque page tokens (AIP-158)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from feedback_service.domain.errors import FieldViolation, InvalidArgumentError
from feedback_service.domain.model import Source

DEFAULT_PAGE_SIZE = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class FeedbackFilter:
    """Which feedback a list returns; empty strings and None match anything."""

    project: str
    trace_id: str = ""
    model: str = ""
    model_version: str = ""
    key: str = ""
    source: Source | None = None
    author: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None

    def digest(self) -> str:
        """Identifies the filter, so a page token cannot be replayed under another one."""
        parts = [
            self.project,
            self.trace_id,
            self.model,
            self.model_version,
            self.key,
            -1 if self.source is None else int(self.source),
            self.author,
            self.start_time.isoformat() if self.start_time else "",
            self.end_time.isoformat() if self.end_time else "",
        ]
        return hashlib.blake2b(json.dumps(parts).encode(), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Position after the last item of a page, in (create_time, feedback_id) descending order."""

    create_time_us: int
    feedback_id: str


def micros_since_epoch(moment: datetime) -> int:
    """Exact microseconds since the Unix epoch (no float rounding)."""
    # The parts of the timedelta: a few times cheaper than dividing it by one microsecond.
    since = moment - _EPOCH
    return (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds


def effective_page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgumentError([FieldViolation("page_size", "must not be negative")])
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def encode_page_token(cursor: PageCursor, list_filter: FeedbackFilter) -> str:
    payload = json.dumps([1, list_filter.digest(), cursor.create_time_us, cursor.feedback_id])
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_page_token(token: str, list_filter: FeedbackFilter) -> PageCursor | None:
    """The cursor a token stands for; None for an empty token."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        version, digest, create_time_us, feedback_id = json.loads(raw)
        valid = version == 1 and isinstance(create_time_us, int) and isinstance(feedback_id, str)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        valid = False
    if not valid:
        raise InvalidArgumentError([FieldViolation("page_token", "is not a token returned by ListFeedback")])
    if digest != list_filter.digest():
        raise InvalidArgumentError([FieldViolation("page_token", "was issued for a request with different filters")])
    return PageCursor(create_time_us=create_time_us, feedback_id=feedback_id)
