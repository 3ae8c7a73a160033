"""The one codec of opaque position tokens: ListFeedback page tokens and ExportFeedback cursors.

A token is URL-safe base64 (no padding) of ``[1, filter digest, create_time_us, feedback_id]``: a
position in (create_time, feedback_id) order, bound to the request's filter so it cannot be replayed
under another one. The callers name the field and say what the token should have come from.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from feedback_service.domain.errors import FieldViolation, InvalidArgumentError

_VERSION = 1


@dataclass(frozen=True, slots=True)
class PageCursor:
    """A position in (create_time, feedback_id) order: the last item a page or export chunk returned."""

    create_time_us: int
    feedback_id: str


def encode_position(cursor: PageCursor, digest: str) -> str:
    payload = json.dumps([_VERSION, digest, cursor.create_time_us, cursor.feedback_id])
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_position(token: str, digest: str, *, field: str, issued_by: str, other_filter: str) -> PageCursor | None:
    """The cursor ``token`` stands for (None for an empty token); InvalidArgumentError naming ``field``
    when it is not a token of ``issued_by``, or was issued for another filter (``other_filter`` says so)."""
    if not token:
        return None
    try:
        version, found_digest, create_time_us, feedback_id = json.loads(
            base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        )
        valid = version == _VERSION and isinstance(create_time_us, int) and isinstance(feedback_id, str)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        valid = False
    if not valid:
        raise InvalidArgumentError(
            [FieldViolation(field, f"is not a {field.replace('_', ' ')} returned by {issued_by}")]
        )
    if found_digest != digest:
        raise InvalidArgumentError([FieldViolation(field, other_filter)])
    return PageCursor(create_time_us=create_time_us, feedback_id=feedback_id)
