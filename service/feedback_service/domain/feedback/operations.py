"""The rules of each feedback operation: validate, decide, and call the store."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from feedback_service.domain.cursor_tokens import PageCursor
from feedback_service.domain.errors import (
    AlreadyExistsError,
    FeedbackServiceError,
    FieldViolation,
    InvalidArgumentError,
    KeyArchivedError,
    NotFoundError,
)
from feedback_service.domain.feedback.fingerprint import create_fingerprint
from feedback_service.domain.feedback.listing import (
    FeedbackFilter,
    decode_page_token,
    effective_page_size,
    encode_page_token,
    micros_since_epoch,
)
from feedback_service.domain.feedback.updates import apply_update
from feedback_service.domain.keys.registry import KeySchemaRegistry
from feedback_service.domain.keys.schemas import KeySchema, check_against_schema
from feedback_service.domain.model import Feedback, FeedbackInput
from feedback_service.domain.ports import CreateOutcome, CreateStatus, FeedbackStore, NewFeedback
from feedback_service.domain.validation import (
    ViolationCollector,
    check_feedback_id,
    check_project,
    check_time_range,
    normalize_trace_id,
    validate_new_feedback,
)

MAX_BATCH_SIZE = 1000
_ONE_MICROSECOND = timedelta(microseconds=1)

Clock = Callable[[], datetime]
ProjectSchemas = Mapping[str, Mapping[str, KeySchema]]  # project -> key name -> schema


def utc_now() -> datetime:
    return datetime.now(UTC)


class FeedbackOperations:
    """Create, read, update and delete feedback, enforcing the API's semantics."""

    def __init__(
        self, store: FeedbackStore, *, clock: Clock = utc_now, schemas: KeySchemaRegistry | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        # Key schemas the feedback of a key must follow; None: every key is free-form.
        self._schemas = schemas
        self._last_time = datetime.min.replace(tzinfo=UTC)

    async def create(self, draft: FeedbackInput, *, actor: str = "") -> CreateOutcome:
        """The stored feedback: CREATED now, or EXISTING (a retry; its feedback is the earlier record).

        ``actor`` is the key id of the caller's credential, kept for audit.
        """
        new = self._prepare(draft, actor, await self._schemas_of([draft]))
        (outcome,) = await self._store.create([new])
        return _resolve(outcome)

    async def batch_create(
        self, drafts: Sequence[FeedbackInput], *, actor: str = ""
    ) -> list[CreateOutcome | FeedbackServiceError]:
        """One result per item: its outcome as create() returns it, or the item's own error."""
        if not drafts:
            raise InvalidArgumentError([FieldViolation("feedback", "must hold at least one item")])
        if len(drafts) > MAX_BATCH_SIZE:
            raise InvalidArgumentError(
                [FieldViolation("feedback", f"must hold at most {MAX_BATCH_SIZE} items (got {len(drafts)})")]
            )
        results: list[CreateOutcome | FeedbackServiceError] = []
        positions: list[int] = []
        valid: list[NewFeedback] = []
        schemas = await self._schemas_of(drafts)
        for position, draft in enumerate(drafts):
            try:
                valid.append(self._prepare(draft, actor, schemas))
            except (InvalidArgumentError, KeyArchivedError) as error:
                results.append(error)
            else:
                positions.append(position)
                results.append(_NOT_STORED_YET)
        if valid:
            outcomes = await self._store.create(valid)
            for position, outcome in zip(positions, outcomes, strict=True):
                try:
                    results[position] = _resolve(outcome)
                except FeedbackServiceError as error:
                    results[position] = error
        return results

    async def create_all(self, drafts: Sequence[FeedbackInput], *, actor: str = "") -> list[Feedback]:
        """Store every item or none: all are validated (paths ``feedback[i]``) before one write."""
        prepared: list[NewFeedback] = []
        violations: list[FieldViolation] = []
        schemas = await self._schemas_of(drafts)
        for position, draft in enumerate(drafts):
            try:
                prepared.append(self._prepare(draft, actor, schemas, prefix=f"feedback[{position}]"))
            except InvalidArgumentError as error:
                violations += error.violations
        if violations:
            raise InvalidArgumentError(violations)
        outcomes = await self._store.create(prepared)
        return [_resolve(outcome).feedback for outcome in outcomes]

    async def get(self, project: str, feedback_id: str) -> Feedback:
        _check_identity(project, feedback_id)
        found = await self._store.get(project, feedback_id)
        if found is None:
            raise NotFoundError(f"feedback {feedback_id!r} not found in project {project!r}")
        return found

    async def list(self, list_filter: FeedbackFilter, *, page_size: int, page_token: str) -> tuple[list[Feedback], str]:
        """A page of feedback, newest first, and the token of the next page ('' at the end)."""
        found = ViolationCollector()
        check_project(list_filter.project, found)
        check_time_range(list_filter.start_time, list_filter.end_time, found)
        found.raise_if_any()
        list_filter = dataclasses.replace(list_filter, trace_id=normalize_trace_id(list_filter.trace_id))
        limit = effective_page_size(page_size)
        after = decode_page_token(page_token, list_filter)
        # One extra row tells whether another page exists without a count query.
        rows = await self._store.list_feedback(list_filter, after, limit + 1)
        if len(rows) <= limit:
            return rows, ""
        page = rows[:limit]
        last = page[-1]
        assert last.create_time is not None
        cursor = PageCursor(create_time_us=micros_since_epoch(last.create_time), feedback_id=last.feedback_id)
        return page, encode_page_token(cursor, list_filter)

    async def update(self, draft: FeedbackInput, mask: Sequence[str], *, actor: str = "") -> Feedback:
        _check_identity(draft.project, draft.feedback_id, prefix="feedback")
        now = self._now()
        schemas = await self._schemas_of([draft])

        def change(current: Feedback) -> Feedback:
            updated = dataclasses.replace(apply_update(current, draft, mask, now), updated_by=actor)
            _check_schema(updated, schemas, "feedback")
            return updated

        # The store applies the change to the revision current at write time, never to a stale read.
        return await self._store.update(draft.project, draft.feedback_id, change)

    async def delete(self, project: str, feedback_id: str, *, actor: str = "") -> None:
        _check_identity(project, feedback_id)
        await self._store.delete(project, feedback_id, self._now(), actor=actor)

    def _prepare(
        self, draft: FeedbackInput, actor: str, schemas: ProjectSchemas, prefix: str = "feedback"
    ) -> NewFeedback:
        feedback = validate_new_feedback(draft, now=self._now(), actor=actor, prefix=prefix)
        _check_schema(feedback, schemas, prefix)
        # A fresh server UUID cannot exist yet, so nothing is looked up for it; its fingerprint is stored
        # all the same (it covers the id, as does a re-send naming that id), so such a re-send is a retry.
        return NewFeedback(feedback, create_fingerprint(feedback), bool(draft.feedback_id))

    async def _schemas_of(self, drafts: Sequence[FeedbackInput]) -> ProjectSchemas:
        """The key schemas of the projects the drafts name, looked up once per request."""
        if self._schemas is None:
            return {}
        return {project: await self._schemas.for_project(project) for project in {d.project for d in drafts}}

    def _now(self) -> datetime:
        # Strictly increasing: writes of one process never share a timestamp, so "newer" is always
        # defined (vote replacement, export order), even within one batch.
        now = self._clock()
        if now <= self._last_time:  # times have microsecond steps: "later" means one step later at least
            now = self._last_time + _ONE_MICROSECOND
        self._last_time = now
        return now


_NO_SCHEMAS: Mapping[str, KeySchema] = {}  # shared, not a new {} per item
# Placeholder for items whose outcome comes from the store below.
_NOT_STORED_YET = FeedbackServiceError("not stored yet")


def _check_schema(feedback: Feedback, schemas: ProjectSchemas, prefix: str) -> None:
    """INVALID_ARGUMENT when the feedback breaks its key's schema; FAILED_PRECONDITION for archived keys."""
    schema = schemas.get(feedback.project, _NO_SCHEMAS).get(feedback.key)
    if schema is None:  # a free-form key: nothing to check (the common case, kept cheap)
        return
    found = ViolationCollector(prefix)
    check_against_schema(feedback, schema, found)
    found.raise_if_any()


def _check_identity(project: str, feedback_id: str, *, prefix: str = "") -> None:
    found = ViolationCollector(prefix)
    check_project(project, found)
    check_feedback_id(feedback_id, found, required=True)
    found.raise_if_any()


def _resolve(outcome: CreateOutcome) -> CreateOutcome:
    """The outcome of a create that stored or found its feedback; AlreadyExistsError otherwise."""
    if outcome.status is CreateStatus.CREATED:
        return outcome
    feedback = outcome.feedback
    if outcome.status is CreateStatus.CONFLICT:
        raise AlreadyExistsError(
            f"feedback_id {feedback.feedback_id!r} is already used by different feedback in project "
            f"{feedback.project!r}; a retry must resend the same payload, new feedback needs a new id"
        )
    if outcome.status is CreateStatus.DELETED:
        raise AlreadyExistsError(
            f"feedback_id {feedback.feedback_id!r} was used by feedback that has since been deleted; "
            "ids are never reused"
        )
    return outcome
