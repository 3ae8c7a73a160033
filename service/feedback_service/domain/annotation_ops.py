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

from feedback_service.domain.agreement import Agreement, Level, Method, measure_agreement
from feedback_service.domain.annotation import (
    MAX_ITEMS_PER_CALL,
    MAX_SELECTOR_LIMIT,
    Claim,
    ClaimState,
    FeedbackSelector,
    Queue,
    QueueItem,
    QueueStats,
    Rating,
    check_reviewer,
    item_id_of,
    next_item,
    queue_stats,
    validate_queue,
)
from feedback_service.domain.errors import (
    LeaseExpiredError,
    NotFoundError,
    PermissionDeniedError,
    QueueEmptyError,
    QueueNotFoundError,
)
from feedback_service.domain.feedback_keys import KeyKind
from feedback_service.domain.key_schemas import KeySchemaRegistry
from feedback_service.domain.model import Feedback, FeedbackInput, Source
from feedback_service.domain.operations import FeedbackOperations
from feedback_service.domain.validation import (
    ViolationCollector,
    check_key,
    check_project,
    normalize_span_id,
    normalize_trace_id,
)


class AnnotationStore(Protocol):
    async def create_queue(self, queue: Queue) -> None: ...
    async def get_queue(self, project: str, queue_id: str) -> Queue | None: ...
    async def list_queues(self, project: str) -> list[Queue]: ...
    async def items(self, project: str, queue_id: str) -> list[QueueItem]: ...
    async def item(self, project: str, queue_id: str, item_id: str) -> QueueItem | None: ...
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
class KeyAgreement:
    key: str
    method: Method | None
    agreement: Agreement


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
        return ClaimedItem(item=item, claim=claim, queue=queue)

    async def submit(
        self, project: str, queue_id: str, claim_id: str, drafts: Sequence[FeedbackInput], *, actor: str
    ) -> list[Feedback]:
        """Store the reviewer's feedback on the claimed item and complete it; all of it or nothing."""
        queue = await self.get_queue(project, queue_id)
        _check_annotation_keys(queue, drafts)
        async with self._lock(queue_id):
            claim = await self._find_claim(project, queue_id, claim_id)
            if claim is not None and claim.state is ClaimState.DONE:
                return await self._submitted(project, claim_id, drafts)  # a retry of a submission that succeeded
            claim = self._live(claim, claim_id)
            item = await self._store.item(project, queue_id, claim.item_id)
            assert item is not None, "a claim always names an item of its queue"
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

    async def skip(self, project: str, queue_id: str, claim_id: str) -> None:
        await self.get_queue(project, queue_id)
        async with self._lock(queue_id):
            claim = self._live(await self._find_claim(project, queue_id, claim_id), claim_id)
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
        if start_time and end_time and start_time >= end_time:
            found.add("end_time", "must be after start_time")
        found.raise_if_any()
        keys: tuple[str, ...] = (key,) if key else ()
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
            values = [
                {rater: value for rater, value in unit.items() if isinstance(value, float) == (level == "interval")}
                for unit in units.values()
            ]
            method, measured = measure_agreement(values, level=level)
            results.append(KeyAgreement(key=name, method=method if measured.item_count else None, agreement=measured))
        return results


def _checked_items(items: Sequence[QueueItem], selector: FeedbackSelector | None) -> list[QueueItem]:
    found = ViolationCollector()
    if len(items) > MAX_ITEMS_PER_CALL:
        found.add("items", f"must hold at most {MAX_ITEMS_PER_CALL} items per call")
    if not items and selector is None:
        found.add("items", "give items, or from_feedback to select traces by their feedback")
    for position, item in enumerate(items):
        if not item.trace_id or len(item.trace_id) > 128:
            found.add(f"items[{position}].trace_id", "is required: at most 128 characters")
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


def _check_annotation_keys(queue: Queue, drafts: Sequence[FeedbackInput]) -> None:
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
