"""What the domain needs from storage. The store implements it; the domain never imports the store."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from feedback_service.domain.listing import FeedbackFilter, PageCursor
from feedback_service.domain.model import Feedback


class CreateStatus(enum.Enum):
    """What happened to one create."""

    CREATED = "created"  # stored now
    EXISTING = "existing"  # the same create was stored before: a retry
    CONFLICT = "conflict"  # the id holds different feedback
    DELETED = "deleted"  # the id held feedback that has been deleted


@dataclass(frozen=True, slots=True)
class NewFeedback:
    """A validated create: the record to store and the digest that recognises its retries."""

    feedback: Feedback
    fingerprint: str
    # False when the server generated the id: a fresh UUID cannot exist yet.
    check_existing: bool = True


@dataclass(frozen=True, slots=True)
class CreateOutcome:
    status: CreateStatus
    # The stored record: the new one, or the one already under the id.
    feedback: Feedback


class FeedbackStore(Protocol):
    async def create(self, items: Sequence[NewFeedback]) -> list[CreateOutcome]:
        """Store new feedback unless its id exists; one outcome per item, in order. Durable on return."""
        ...

    async def get(self, project: str, feedback_id: str) -> Feedback | None:
        """The current revision, or None when absent or deleted."""
        ...

    async def list_feedback(self, list_filter: FeedbackFilter, after: PageCursor | None, limit: int) -> list[Feedback]:
        """Matching feedback, newest first, strictly after the cursor."""
        ...

    async def write_revision(self, feedback: Feedback, *, deleted: bool) -> None:
        """Store a new revision (an update, or a deletion tombstone). Durable on return."""
        ...
