"""Annotation queues: what a queue, an item and a claim are, and the rules of claiming (pure, no I/O)."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from urllib.parse import quote, urlsplit

from feedback_service.domain.model import Source, Thumb
from feedback_service.domain.validation import ViolationCollector, check_key, check_project

MAX_QUEUE_NAME = 256
MAX_QUEUE_KEYS = 20
MAX_INSTRUCTIONS = 10_000
MAX_REVIEWERS_PER_ITEM = 10
MAX_REVIEWER = 256
MAX_ITEMS_PER_CALL = 10_000
DEFAULT_LEASE = timedelta(minutes=10)
MIN_LEASE = timedelta(seconds=10)
MAX_LEASE = timedelta(hours=24)
DEFAULT_SELECTOR_LIMIT = 1_000
MAX_SELECTOR_LIMIT = 10_000
MAX_CONTENT_BYTES = 256 * 1024
MAX_CONTEXT_NAME = 256
MAX_TRACE_URL_TEMPLATE = 2048
TRACE_ID_PLACEHOLDER = "{trace_id}"
SPAN_ID_PLACEHOLDER = "{span_id}"


class ClaimState(enum.Enum):
    CLAIMED = "claimed"
    DONE = "done"
    SKIPPED = "skipped"


class ContentFormat(enum.Enum):
    """How the texts of an item's content are written (the console renders them accordingly)."""

    PLAIN_TEXT = "plain"
    MARKDOWN = "markdown"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class ItemContent:
    """A snapshot of what reviewers judge: the AI call's input and output, and named context texts."""

    input: str = ""
    output: str = ""
    context: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    format: ContentFormat = ContentFormat.PLAIN_TEXT

    def size(self) -> int:
        """UTF-8 bytes of every text, the measure of MAX_CONTENT_BYTES."""
        texts = [self.input, self.output, *self.context.keys(), *self.context.values()]
        return sum(len(text.encode("utf-8", "surrogatepass")) for text in texts)


@dataclass(frozen=True, slots=True)
class Queue:
    project: str
    queue_id: str
    name: str
    keys: tuple[str, ...]
    instructions: str = ""
    reviewers: tuple[str, ...] = ()  # empty: any reviewer
    reviewers_per_item: int = 1
    lease: timedelta = DEFAULT_LEASE
    create_time: datetime | None = None
    trace_url_template: str = ""  # e.g. https://tracing.example.com/trace/{trace_id}; empty: no link

    def allows(self, reviewer: str) -> bool:
        return not self.reviewers or reviewer in self.reviewers

    def trace_url(self, item: QueueItem) -> str:
        """The link of ``item`` to its trace, or '' when the queue has no template."""
        if not self.trace_url_template:
            return ""
        return self.trace_url_template.replace(TRACE_ID_PLACEHOLDER, quote(item.trace_id, safe="")).replace(
            SPAN_ID_PLACEHOLDER, quote(item.span_id, safe="")
        )


@dataclass(frozen=True, slots=True)
class QueueItem:
    trace_id: str
    span_id: str = ""
    model: str = ""
    model_version: str = ""
    item_id: str = ""
    add_time: datetime | None = None
    content: ItemContent | None = None  # None: no snapshot (reviewers follow the trace link)


@dataclass(frozen=True, slots=True)
class Claim:
    """One reviewer's hold on (and then outcome of) one item. At most one per item and reviewer."""

    queue_id: str
    item_id: str
    reviewer: str
    claim_id: str
    state: ClaimState
    lease_expire_time: datetime
    update_time: datetime

    def holds(self, now: datetime) -> bool:
        """A live lease: the item is this reviewer's until it expires."""
        return self.state is ClaimState.CLAIMED and self.lease_expire_time > now


@dataclass(frozen=True, slots=True)
class FeedbackSelector:
    """Every trace with feedback matching all set fields: how a queue is filled from feedback."""

    model: str = ""
    model_version: str = ""
    key: str = ""
    thumb: Thumb = Thumb.UNSPECIFIED
    source: Source = Source.UNSPECIFIED
    start_time: datetime | None = None
    end_time: datetime | None = None
    limit: int = DEFAULT_SELECTOR_LIMIT


@dataclass(frozen=True, slots=True)
class Rating:
    """One reviewer's current value for one key on one unit (a trace and span): what agreement is computed on.

    Thumbs and labels are categories (``"thumb:up"``, ``"label:billing"``); scores are numbers.
    """

    key: str
    unit: tuple[str, str]
    rater: str
    value: str | float


@dataclass(frozen=True, slots=True)
class ReviewerCounts:
    reviewer: str
    in_progress: int = 0
    done: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class QueueStats:
    total: int
    pending: int
    in_progress: int
    done: int
    reviewers: tuple[ReviewerCounts, ...] = field(default_factory=tuple)


def item_id_of(trace_id: str, span_id: str) -> str:
    """Deterministic, so adding the same trace and span twice yields the same item."""
    return hashlib.sha256(f"{trace_id}\x00{span_id}".encode()).hexdigest()[:24]


def validate_queue(queue: Queue) -> None:
    found = ViolationCollector("queue")
    check_project(queue.project, found)
    if not 1 <= len(queue.name) <= MAX_QUEUE_NAME:
        found.add("name", f"must be 1 to {MAX_QUEUE_NAME} characters")
    if not 1 <= len(queue.keys) <= MAX_QUEUE_KEYS:
        found.add("keys", f"must name 1 to {MAX_QUEUE_KEYS} feedback keys to annotate")
    if len(set(queue.keys)) != len(queue.keys):
        found.add("keys", "must not repeat a key")
    for position, key in enumerate(queue.keys):
        check_key(key, found, name=f"keys[{position}]")
    if len(queue.instructions) > MAX_INSTRUCTIONS:
        found.add("instructions", f"must be at most {MAX_INSTRUCTIONS} characters")
    for position, reviewer in enumerate(queue.reviewers):
        if not 1 <= len(reviewer) <= MAX_REVIEWER:
            found.add(f"reviewers[{position}]", f"must be 1 to {MAX_REVIEWER} characters")
    if not 1 <= queue.reviewers_per_item <= MAX_REVIEWERS_PER_ITEM:
        found.add("reviewers_per_item", f"must be 1 to {MAX_REVIEWERS_PER_ITEM}")
    if not MIN_LEASE <= queue.lease <= MAX_LEASE:
        found.add("lease", "must be between 10 seconds and 24 hours")
    if queue.trace_url_template:
        check_trace_url_template(queue.trace_url_template, found)
    found.raise_if_any()


def check_trace_url_template(template: str, found: ViolationCollector) -> None:
    """An http or https URL with the ``{trace_id}`` placeholder (``{span_id}`` optional)."""
    name = "trace_url_template"
    if len(template) > MAX_TRACE_URL_TEMPLATE:
        found.add(name, f"must be at most {MAX_TRACE_URL_TEMPLATE} characters")
        return
    if TRACE_ID_PLACEHOLDER not in template:
        found.add(
            name,
            f"must contain the placeholder {TRACE_ID_PLACEHOLDER}, e.g. https://tracing.example.com/trace/{{trace_id}}",
        )
    try:
        parts = urlsplit(template.replace(TRACE_ID_PLACEHOLDER, "t").replace(SPAN_ID_PLACEHOLDER, "s"))
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        found.add(name, "must be an http:// or https:// URL with a host")
    elif any(ch.isspace() or ord(ch) < 0x20 for ch in template):
        found.add(name, "must not contain spaces or control characters")


def check_content(content: ItemContent, found: ViolationCollector, name: str) -> None:
    """Content limits: MAX_CONTENT_BYTES in all, context names 1 to 256 characters, JSON that parses."""
    size = content.size()
    if size > MAX_CONTENT_BYTES:
        found.add(name, f"is {size} bytes; an item's content is at most {MAX_CONTENT_BYTES} bytes (256 KiB)")
        return
    for context_name in content.context:
        if not 1 <= len(context_name) <= MAX_CONTEXT_NAME:
            found.add(f"{name}.context", f"names must be 1 to {MAX_CONTEXT_NAME} characters")
            break
    if content.format is ContentFormat.JSON:
        for part in ("input", "output"):
            text = getattr(content, part)
            if text and not _is_json(text):
                found.add(f"{name}.{part}", "is not valid JSON (the content's format is CONTENT_FORMAT_JSON)")


def _reject_constant(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def _is_json(text: str) -> bool:
    """Strict JSON, as browsers' JSON.parse reads it: no NaN or Infinity; nesting too deep to parse is not JSON."""
    try:
        json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return False
    return True


def check_reviewer(reviewer: str, found: ViolationCollector) -> None:
    if not 1 <= len(reviewer) <= MAX_REVIEWER:
        found.add("reviewer", f"is required: 1 to {MAX_REVIEWER} characters naming who reviews")


def next_item(
    queue: Queue, items: Sequence[QueueItem], claims: Iterable[Claim], reviewer: str, now: datetime
) -> QueueItem | None:
    """The oldest item this reviewer may take now, or None.

    An item is open to a reviewer who has not annotated or skipped it and holds no live lease on it,
    while fewer than ``reviewers_per_item`` reviewers have annotated it or hold a live lease on it.
    An expired lease counts for nobody: the item is back in the pool (its holder may take it again).
    """
    taken: dict[str, int] = {}
    closed_for_reviewer: set[str] = set()
    for claim in claims:
        if claim.state is ClaimState.DONE or claim.holds(now):
            taken[claim.item_id] = taken.get(claim.item_id, 0) + 1
        if claim.reviewer == reviewer and (claim.state is not ClaimState.CLAIMED or claim.holds(now)):
            closed_for_reviewer.add(claim.item_id)
    for item in items:
        if item.item_id not in closed_for_reviewer and taken.get(item.item_id, 0) < queue.reviewers_per_item:
            return item
    return None


def queue_stats(queue: Queue, item_ids: Sequence[str], claims: Iterable[Claim], now: datetime) -> QueueStats:
    done_by_item: dict[str, int] = {}
    held: set[str] = set()
    per_reviewer: dict[str, list[int]] = {}
    for claim in claims:
        counts = per_reviewer.setdefault(claim.reviewer, [0, 0, 0])
        if claim.state is ClaimState.DONE:
            done_by_item[claim.item_id] = done_by_item.get(claim.item_id, 0) + 1
            counts[1] += 1
        elif claim.state is ClaimState.SKIPPED:
            counts[2] += 1
        elif claim.holds(now):
            held.add(claim.item_id)
            counts[0] += 1
    done = sum(1 for item_id in item_ids if done_by_item.get(item_id, 0) >= queue.reviewers_per_item)
    in_progress = sum(
        1 for item_id in item_ids if item_id in held and done_by_item.get(item_id, 0) < queue.reviewers_per_item
    )
    return QueueStats(
        total=len(item_ids),
        pending=len(item_ids) - done - in_progress,
        in_progress=in_progress,
        done=done,
        reviewers=tuple(ReviewerCounts(reviewer, *counts) for reviewer, counts in sorted(per_reviewer.items())),
    )
