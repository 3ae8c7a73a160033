"""What the domain needs from storage. The store implements it; the domain never imports the store."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from feedback_service.domain.changes import ChangeFeed
from feedback_service.domain.cursor_tokens import PageCursor
from feedback_service.domain.evaluation.aggregates import AggregateQuery, FeedbackScope, GroupCounts
from feedback_service.domain.feedback.listing import FeedbackFilter
from feedback_service.domain.model import Feedback

# Given the current revision, the next one (raise a FeedbackServiceError to refuse).
Change = Callable[[Feedback], Feedback]


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
class ExportFilter:
    scope: FeedbackScope
    only_with_correction: bool = False
    only_with_comment: bool = False


@dataclass(frozen=True, slots=True)
class CreateOutcome:
    status: CreateStatus
    # The stored record: the new one, or the one already under the id.
    feedback: Feedback


class FeedbackStore(Protocol):
    changes: ChangeFeed

    async def create(self, items: Sequence[NewFeedback]) -> list[CreateOutcome]:
        """Store new feedback unless its id exists; one outcome per item, in order. Durable on return.

        Applies one vote per user: a new SOURCE_USER vote with an author replaces (deletes) that
        author's current vote on the same trace and key.
        """
        ...

    async def update(self, project: str, feedback_id: str, change: Change) -> Feedback:
        """Store ``change(current)`` as the next revision; NotFoundError when absent or deleted."""
        ...

    async def delete(self, project: str, feedback_id: str, now: datetime, *, actor: str = "") -> None:
        """Write a deletion tombstone (recording ``actor``); NotFoundError when absent or already deleted."""
        ...

    async def aggregate(self, query: AggregateQuery) -> list[GroupCounts]:
        """Exact counts per group of the current feedback in scope."""
        ...

    async def export_page(
        self, export_filter: ExportFilter, after: PageCursor | None, before: datetime, limit: int
    ) -> list[Feedback]:
        """Feedback in (create_time, feedback_id) ascending order after the cursor, created before ``before``."""
        ...

    async def write_marker(self) -> int:
        """A number that grows whenever anything is written to the store (by any replica)."""
        ...

    def safe_watermark(self) -> datetime:
        """Every feedback created before this time is stored (nothing older is still in flight)."""
        ...

    async def get(self, project: str, feedback_id: str) -> Feedback | None:
        """The current revision, or None when absent or deleted."""
        ...

    async def list_feedback(self, list_filter: FeedbackFilter, after: PageCursor | None, limit: int) -> list[Feedback]:
        """Matching feedback, newest first, strictly after the cursor."""
        ...
