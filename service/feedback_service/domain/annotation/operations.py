"""Annotation queue operations: create, fill, claim, submit, skip, report, and reviewer agreement.

Claims, submissions and skips of one queue are serialised within the process (one lock per queue),
so concurrent reviewers of a replica never hold the same item beyond ``reviewers_per_item``. Like
updates, this holds per process: run a queue's reviewers through one replica, or accept that two
replicas may rarely hand out the same item at the same moment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from feedback_service.domain.annotation.agreement import (
    Agreement,
    ItemDisagreement,
    Level,
    Method,
    measure_agreement,
    most_disagreed,
)
from feedback_service.domain.annotation.queues import (
    MAX_ITEMS_PER_CALL,
    MAX_SELECTOR_LIMIT,
    Claim,
    ClaimState,
    FeedbackSelector,
    Queue,
    QueueItem,
    QueueStats,
    Rating,
    check_content,
    check_reviewer,
    item_id_of,
    next_item,
    queue_stats,
    validate_queue,
)
from feedback_service.domain.errors import (
    LeaseExpiredError,
    NotFoundError,
    OutsideBindingError,
    PermissionDeniedError,
    QueueEmptyError,
    QueueNotFoundError,
)
from feedback_service.domain.feedback.listing import FeedbackFilter
from feedback_service.domain.feedback.operations import FeedbackOperations
from feedback_service.domain.keys.registry import KeySchemaRegistry
from feedback_service.domain.keys.schemas import KeyKind
from feedback_service.domain.model import Feedback, FeedbackInput, Source
from feedback_service.domain.validation import (
    ViolationCollector,
    check_key,
    check_project,
    check_time_range,
    normalize_span_id,
    normalize_trace_id,
)


class AnnotationStore(Protocol):
    async def create_queue(self, queue: Queue) -> None: ...
    async def get_queue(self, project: str, queue_id: str) -> Queue | None: ...
    async def list_queues(self, project: str) -> list[Queue]: ...
    async def items(self, project: str, queue_id: str) -> list[QueueItem]:
        """Every item, oldest first, without content (claims read all items; content is read one at a time)."""
        ...

    async def item(self, project: str, queue_id: str, item_id: str) -> QueueItem | None:
        """One item with its content."""
        ...

    async def add_items(self, project: str, queue_id: str, items: Sequence[QueueItem]) -> None: ...
    async def traces_matching(self, project: str, selector: FeedbackSelector) -> list[QueueItem]: ...
    async def claims(self, project: str, queue_id: str) -> list[Claim]: ...
    async def put_claim(self, project: str, claim: Claim) -> None: ...
    async def reviewer_ratings(
        self,
        project: str,
        keys: Sequence[str],
        *,
        queue_id: str = "",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
    ) -> list[Rating]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class ClaimedItem:
    item: QueueItem
    claim: Claim
    queue: Queue


@dataclasses.dataclass(frozen=True, slots=True)
class ItemContext:
    """What the holder of a claim sees beside the item: end users' feedback on its trace, never reviewers'."""

    item: QueueItem
    claim: Claim
    queue: Queue
    user_feedback: list[Feedback]


# At most this many pieces of end-user feedback come with an item's context, newest first.
MAX_CONTEXT_FEEDBACK = 100


@dataclasses.dataclass(frozen=True, slots=True)
class DisagreedItem:
    """An item on which reviewers disagreed on a key, with its ratings as text (see :func:`rating_text`)."""

    trace_id: str
    span_id: str
    trace_url: str
    disagreement: float
    rating_count: int
    distinct_value_count: int
    ratings: tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class KeyAgreement:
    key: str
    method: Method | None
    agreement: Agreement
    disagreements: tuple[DisagreedItem, ...] = ()


MAX_DISAGREEMENTS = 10
"""Items listed per key by :meth:`AnnotationOperations.agreement`: the most disagreed ones."""


def rating_text(value: str | float) -> str:
    """A rating as people read it: "up"/"down" for thumbs, the label, or the score ("3", "4.5")."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return value.partition(":")[2] if value.startswith(("thumb:", "label:")) else value


class AnnotationOperations:
    def __init__(
        self,
        store: AnnotationStore,
        feedback: FeedbackOperations,
        schemas: KeySchemaRegistry,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._feedback = feedback
        self._schemas = schemas
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, queue_id: str) -> asyncio.Lock:
        return self._locks.setdefault(queue_id, asyncio.Lock())

    async def create_queue(self, queue: Queue) -> Queue:
        validate_queue(queue)
        created = dataclasses.replace(queue, queue_id=uuid.uuid4().hex, create_time=self._clock())
        await self._store.create_queue(created)
        return created

    async def get_queue(self, project: str, queue_id: str) -> Queue:
        found = ViolationCollector()
        check_project(project, found)
        if not queue_id:
            found.add("queue_id", "is required")
        found.raise_if_any()
        queue = await self._store.get_queue(project, queue_id)
        if queue is None:
            raise QueueNotFoundError(f"queue {queue_id!r} not found in project {project!r}")
        return queue

    async def check_link_target(self, project: str, queue_id: str, reviewer: str, *, read: bool) -> None:
        """What a console link may be bound to: an existing queue (when named) that allows the reviewer (a
        read link reviews nothing, so any reviewer id will do)."""
        if not queue_id:
            return
        queue = await self.get_queue(project, queue_id)
        if not read and reviewer and not queue.allows(reviewer):
            found = ViolationCollector()
            found.add("reviewer", f"{reviewer!r} is not among the reviewers of queue {queue.name!r}")
            found.raise_if_any()

    async def list_queues(self, project: str) -> list[Queue]:
        found = ViolationCollector()
        check_project(project, found)
        found.raise_if_any()
        return await self._store.list_queues(project)

    async def add_items(
        self, project: str, queue_id: str, items: Sequence[QueueItem], selector: FeedbackSelector | None
    ) -> tuple[int, int]:
        """(added, already queued). Items are identified by trace and span."""
        queue = await self.get_queue(project, queue_id)
        wanted = _checked_items(items, selector)
        if selector is not None:
            wanted += await self._store.traces_matching(queue.project, selector)
        async with self._lock(queue_id):
            present = {item.item_id for item in await self._store.items(project, queue_id)}
            now = self._clock()
            new: dict[str, QueueItem] = {}
            for item in wanted:
                if item.item_id not in present and item.item_id not in new:
                    new[item.item_id] = dataclasses.replace(item, add_time=now)
            await self._store.add_items(project, queue_id, list(new.values()))
        return len(new), len(wanted) - len(new)

    async def stats(self, project: str, queue_id: str) -> QueueStats:
        queue = await self.get_queue(project, queue_id)
        items = await self._store.items(project, queue_id)
        claims = await self._store.claims(project, queue_id)
        return queue_stats(queue, [item.item_id for item in items], claims, self._clock())

    async def claim_next(self, project: str, queue_id: str, reviewer: str) -> ClaimedItem:
        found = ViolationCollector()
        check_reviewer(reviewer, found)
        found.raise_if_any()
        queue = await self.get_queue(project, queue_id)
        if not queue.allows(reviewer):
            raise PermissionDeniedError(f"reviewer {reviewer!r} is not among the reviewers of queue {queue.name!r}")
        async with self._lock(queue_id):
            now = self._clock()
            items = await self._store.items(project, queue_id)
            item = next_item(queue, items, await self._store.claims(project, queue_id), reviewer, now)
            if item is None:
                raise QueueEmptyError(f"nothing left in queue {queue.name!r} for reviewer {reviewer!r}")
            claim = Claim(
                queue_id=queue_id,
                item_id=item.item_id,
                reviewer=reviewer,
                claim_id=uuid.uuid4().hex,
                state=ClaimState.CLAIMED,
                lease_expire_time=now + queue.lease,
                update_time=now,
            )
            await self._store.put_claim(project, claim)
        return ClaimedItem(item=await self._stored_item(project, queue_id, item.item_id), claim=claim, queue=queue)

    async def _stored_item(self, project: str, queue_id: str, item_id: str) -> QueueItem:
        """An item with its content; every claim names an item of its queue."""
        item = await self._store.item(project, queue_id, item_id)
        assert item is not None, "a claim always names an item of its queue"
        return item

    async def item_context(self, project: str, queue_id: str, claim_id: str, *, reviewer: str | None) -> ItemContext:
        """The claimed item and end users' feedback on its trace, for the reviewer holding the claim only.

        ``reviewer``: who asks, when the credential says so (a console link); another reviewer's claim is
        PERMISSION_DENIED. Reviewers work blind: reviewer and automated feedback is never shown.
        """
        queue = await self.get_queue(project, queue_id)
        claim = self._live(await self._find_claim(project, queue_id, claim_id), claim_id)
        _check_holder(claim, reviewer)
        item = await self._stored_item(project, queue_id, claim.item_id)
        feedback, _ = await self._feedback.list(
            FeedbackFilter(project=project, trace_id=item.trace_id, source=Source.USER),
            page_size=MAX_CONTEXT_FEEDBACK,
            page_token="",
        )
        return ItemContext(item=item, claim=claim, queue=queue, user_feedback=feedback)

    async def submit(
        self,
        project: str,
        queue_id: str,
        claim_id: str,
        drafts: Sequence[FeedbackInput],
        *,
        actor: str,
        reviewer: str | None = None,
    ) -> list[Feedback]:
        """Store the reviewer's feedback on the claimed item and complete it; all of it or nothing.

        ``reviewer``: who submits, when the credential says so (a console link): only their own claims.
        """
        queue = await self.get_queue(project, queue_id)
        _check_annotation_keys(queue, drafts, reviewer)
        async with self._lock(queue_id):
            claim = await self._find_claim(project, queue_id, claim_id)
            if claim is not None:
                _check_holder(claim, reviewer)
            if claim is not None and claim.state is ClaimState.DONE:
                return await self._submitted(project, claim_id, drafts)  # a retry of a submission that succeeded
            claim = self._live(claim, claim_id)
            item = await self._stored_item(project, queue_id, claim.item_id)
            annotations = [_annotation(draft, project, item, claim) for draft in drafts]
            stored = await self._feedback.create_all(annotations, actor=actor)
            await self._store.put_claim(
                project, dataclasses.replace(claim, state=ClaimState.DONE, update_time=self._clock())
            )
        return stored

    async def _submitted(self, project: str, claim_id: str, drafts: Sequence[FeedbackInput]) -> list[Feedback]:
        """What a completed claim stored, when it is submitted again with the same keys."""
        try:
            return [await self._feedback.get(project, f"ann_{claim_id}_{draft.key}") for draft in drafts]
        except NotFoundError:
            raise LeaseExpiredError(f"claim {claim_id!r} was already used with other keys") from None

    async def skip(self, project: str, queue_id: str, claim_id: str, *, reviewer: str | None = None) -> None:
        await self.get_queue(project, queue_id)
        async with self._lock(queue_id):
            claim = self._live(await self._find_claim(project, queue_id, claim_id), claim_id)
            _check_holder(claim, reviewer)
            await self._store.put_claim(
                project, dataclasses.replace(claim, state=ClaimState.SKIPPED, update_time=self._clock())
            )

    async def _find_claim(self, project: str, queue_id: str, claim_id: str) -> Claim | None:
        found = ViolationCollector()
        if not claim_id:
            found.add("claim_id", "is required")
        found.raise_if_any()
        return next((c for c in await self._store.claims(project, queue_id) if c.claim_id == claim_id), None)

    def _live(self, claim: Claim | None, claim_id: str) -> Claim:
        """The claim if its lease still holds; LEASE_EXPIRED otherwise."""
        if claim is None or not claim.holds(self._clock()):
            state = "unknown" if claim is None else ("expired" if claim.state is ClaimState.CLAIMED else "used")
            raise LeaseExpiredError(f"claim {claim_id!r} is {state}: claim the item again; nothing was stored")
        return claim

    async def agreement(
        self,
        project: str,
        *,
        queue_id: str,
        key: str,
        start_time: datetime | None,
        end_time: datetime | None,
    ) -> list[KeyAgreement]:
        found = ViolationCollector()
        check_project(project, found)
        if not queue_id and not key:
            found.add("queue_id", "either queue_id or key is required")
        if key:
            check_key(key, found)
        check_time_range(start_time, end_time, found)
        found.raise_if_any()
        keys: tuple[str, ...] = (key,) if key else ()
        queue: Queue | None = None
        if queue_id:
            queue = await self.get_queue(project, queue_id)
            keys = keys or queue.keys
        ratings = await self._store.reviewer_ratings(
            project, keys, queue_id=queue_id, start_time=start_time, end_time=end_time
        )
        schemas = await self._schemas.for_project(project)
        results = []
        for name in sorted(keys):
            units: dict[tuple[str, str], dict[str, str | float]] = {}
            for rating in ratings:
                if rating.key == name:
                    units.setdefault(rating.unit, {})[rating.rater] = rating.value
            schema = schemas.get(name)
            scored = any(isinstance(v, float) for unit in units.values() for v in unit.values())
            level: Level = "interval" if (schema.kind is KeyKind.SCORE if schema else scored) else "nominal"
            scores = level == "interval"
            values = {
                unit_id: {rater: value for rater, value in unit.items() if isinstance(value, float) == scores}
                for unit_id, unit in units.items()
            }
            method, measured = measure_agreement(values.values(), level=level)
            disagreed = tuple(
                _disagreed_item(found, queue) for found in most_disagreed(values, limit=MAX_DISAGREEMENTS)
            )
            results.append(
                KeyAgreement(
                    key=name,
                    method=method if measured.item_count else None,
                    agreement=measured,
                    disagreements=disagreed,
                )
            )
        return results


def _disagreed_item(found: ItemDisagreement[tuple[str, str], str, str | float], queue: Queue | None) -> DisagreedItem:
    trace_id, span_id = found.unit
    return DisagreedItem(
        trace_id=trace_id,
        span_id=span_id,
        trace_url=queue.trace_url(QueueItem(trace_id=trace_id, span_id=span_id)) if queue else "",
        disagreement=found.disagreement,
        rating_count=found.rating_count,
        distinct_value_count=found.distinct_value_count,
        ratings=tuple((rater, rating_text(value)) for rater, value in found.ratings),
    )


def _checked_items(items: Sequence[QueueItem], selector: FeedbackSelector | None) -> list[QueueItem]:
    found = ViolationCollector()
    if len(items) > MAX_ITEMS_PER_CALL:
        found.add("items", f"must hold at most {MAX_ITEMS_PER_CALL} items per call")
    if not items and selector is None:
        found.add("items", "give items, or from_feedback to select traces by their feedback")
    for position, item in enumerate(items):
        if not item.trace_id or len(item.trace_id) > 128:
            found.add(f"items[{position}].trace_id", "is required: at most 128 characters")
        if item.content is not None:
            check_content(item.content, found, f"items[{position}].content")
    if selector is not None and not 1 <= selector.limit <= MAX_SELECTOR_LIMIT:
        found.add("from_feedback.limit", f"must be 1 to {MAX_SELECTOR_LIMIT}")
    found.raise_if_any()
    checked = []
    for item in items:
        # Normalised like feedback ids, so one call is one item whatever the case of its hex ids.
        trace_id, span_id = normalize_trace_id(item.trace_id), normalize_span_id(item.span_id)
        checked.append(
            dataclasses.replace(item, trace_id=trace_id, span_id=span_id, item_id=item_id_of(trace_id, span_id))
        )
    return checked


def _check_holder(claim: Claim, reviewer: str | None) -> None:
    """A credential bound to a reviewer (a console link) acts on that reviewer's claims only."""
    if reviewer is not None and claim.reviewer != reviewer:
        raise OutsideBindingError("claim_id", f"claim_id: the claim is not reviewer {reviewer!r}'s")


def _check_annotation_keys(queue: Queue, drafts: Sequence[FeedbackInput], reviewer: str | None = None) -> None:
    if reviewer is not None:
        for position, draft in enumerate(drafts):
            if draft.author and draft.author != reviewer:
                raise OutsideBindingError(
                    f"feedback[{position}].author",
                    f"feedback[{position}].author: {draft.author!r} is not this credential's reviewer {reviewer!r}",
                )
    found = ViolationCollector()
    if not drafts:
        found.add("feedback", "must hold the reviewer's feedback for at least one of the queue's keys")
    seen: set[str] = set()
    for position, draft in enumerate(drafts):
        if draft.key not in queue.keys:
            found.add(
                f"feedback[{position}].key", f"{draft.key!r} is not a key of this queue ({', '.join(queue.keys)})"
            )
        elif draft.key in seen:
            found.add(f"feedback[{position}].key", f"{draft.key!r} is annotated twice")
        seen.add(draft.key)
    found.raise_if_any()


def _annotation(draft: FeedbackInput, project: str, item: QueueItem, claim: Claim) -> FeedbackInput:
    """The stored form of a reviewer's answer: the item's identity, the reviewer as author.

    Its id is derived from the claim and key, so a retried submission stores nothing twice.
    """
    return dataclasses.replace(
        draft,
        project=project,
        feedback_id=f"ann_{claim.claim_id}_{draft.key}",
        trace_id=item.trace_id,
        span_id=item.span_id,
        model=item.model,
        model_version=item.model_version,
        source=Source.REVIEWER,
        author=claim.reviewer,
    )
