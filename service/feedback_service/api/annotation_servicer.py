"""feedback.v1.AnnotationService: queues, claims, annotations and reviewer agreement."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from urllib.parse import quote

from feedback_proto.v1 import annotation_pb2 as pb
from feedback_service.api.calls import CallContext
from feedback_service.api.convert import feedback_input, feedback_message, optional_time, timestamp_of
from feedback_service.domain.access.feedback_tokens import TokenAuthority
from feedback_service.domain.annotation.agreement import Method
from feedback_service.domain.annotation.operations import AnnotationOperations
from feedback_service.domain.annotation.queues import (
    DEFAULT_LEASE,
    ContentFormat,
    FeedbackSelector,
    ItemContent,
    Queue,
    QueueItem,
)
from feedback_service.domain.model import Source, Thumb, enum_member
from feedback_service.domain.validation import ViolationCollector, check_project

_METHODS = {
    Method.COHEN_KAPPA: pb.AGREEMENT_METHOD_COHEN_KAPPA,
    Method.KRIPPENDORFF_ALPHA_NOMINAL: pb.AGREEMENT_METHOD_KRIPPENDORFF_ALPHA_NOMINAL,
    Method.KRIPPENDORFF_ALPHA_INTERVAL: pb.AGREEMENT_METHOD_KRIPPENDORFF_ALPHA_INTERVAL,
}


_FORMATS = {
    pb.CONTENT_FORMAT_UNSPECIFIED: ContentFormat.PLAIN_TEXT,
    pb.CONTENT_FORMAT_PLAIN_TEXT: ContentFormat.PLAIN_TEXT,
    pb.CONTENT_FORMAT_MARKDOWN: ContentFormat.MARKDOWN,
    pb.CONTENT_FORMAT_JSON: ContentFormat.JSON,
}
_FORMAT_NUMBERS = {
    ContentFormat.PLAIN_TEXT: pb.CONTENT_FORMAT_PLAIN_TEXT,
    ContentFormat.MARKDOWN: pb.CONTENT_FORMAT_MARKDOWN,
    ContentFormat.JSON: pb.CONTENT_FORMAT_JSON,
}


def queue_of(message: pb.Queue, context: CallContext) -> Queue:
    lease = DEFAULT_LEASE
    if message.HasField("lease"):
        try:
            lease = message.lease.ToTimedelta()
        except (OverflowError, ValueError):
            lease = timedelta(0)  # out of any range: validation names the field
    return Queue(
        project=context.project(message.project),
        queue_id="",
        name=message.name,
        keys=tuple(message.keys),
        instructions=message.instructions,
        reviewers=tuple(message.reviewers),
        reviewers_per_item=message.reviewers_per_item or 1,
        lease=lease,
        trace_url_template=message.trace_url_template,
    )


def queue_message(queue: Queue) -> pb.Queue:
    message = pb.Queue(
        queue_id=queue.queue_id,
        project=queue.project,
        name=queue.name,
        keys=list(queue.keys),
        instructions=queue.instructions,
        reviewers=list(queue.reviewers),
        reviewers_per_item=queue.reviewers_per_item,
        create_time=timestamp_of(queue.create_time),
        trace_url_template=queue.trace_url_template,
    )
    message.lease.FromTimedelta(queue.lease)
    return message


def item_of(message: pb.QueueItem, position: int, found: ViolationCollector) -> QueueItem:
    """An item to add; an unknown content format is a violation of ``items[position].content.format``."""
    content = None
    if message.HasField("content"):
        given = message.content
        if given.format not in _FORMATS:
            found.add(f"items[{position}].content.format", f"unknown content format {given.format}")
        content = ItemContent(
            input=given.input,
            output=given.output,
            context=dict(given.context),
            format=_FORMATS.get(given.format, ContentFormat.PLAIN_TEXT),
        )
    return QueueItem(
        trace_id=message.trace_id,
        span_id=message.span_id,
        model=message.model,
        model_version=message.model_version,
        content=content,
    )


def item_message(item: QueueItem, queue: Queue | None = None) -> pb.QueueItem:
    """An item as callers see it; with its queue, its trace_url too."""
    message = pb.QueueItem(
        item_id=item.item_id,
        trace_id=item.trace_id,
        span_id=item.span_id,
        model=item.model,
        model_version=item.model_version,
        add_time=timestamp_of(item.add_time),
        trace_url=queue.trace_url(item) if queue is not None else "",
    )
    if item.content is not None:
        message.content.CopyFrom(
            pb.ItemContent(
                input=item.content.input,
                output=item.content.output,
                context=dict(item.content.context),
                format=_FORMAT_NUMBERS[item.content.format],
            )
        )
    return message


def console_url(public_url: str, token: str) -> str:
    """``<public base>/#link=<token>``: the token rides in the fragment, which browsers never send."""
    return f"{public_url.rstrip('/')}/#link={quote(token, safe='.-_~')}" if public_url else ""


def selector_of(message: pb.FeedbackSelector) -> FeedbackSelector:
    found = ViolationCollector("from_feedback")
    thumb, source = enum_member(Thumb, message.thumb), enum_member(Source, message.source)
    if thumb is None:
        found.add("thumb", f"unknown thumb {message.thumb}")
    if source is None:
        found.add("source", f"unknown source {message.source}")
    start = optional_time(message, "start_time", found)
    end = optional_time(message, "end_time", found)
    found.raise_if_any()
    return FeedbackSelector(
        model=message.model,
        model_version=message.model_version,
        key=message.key,
        thumb=thumb or Thumb.UNSPECIFIED,
        source=source or Source.UNSPECIFIED,
        start_time=start,
        end_time=end,
        limit=message.limit or 1000,
    )


class AnnotationServicer:
    """``tokens`` signs console links; ``public_url()`` is the base of the links' URLs ('' when unknown)."""

    def __init__(
        self, annotation: AnnotationOperations, tokens: TokenAuthority, public_url: Callable[[], str] = str
    ) -> None:
        self._annotation = annotation
        self._tokens = tokens
        self._public_url = public_url

    async def CreateQueue(self, request: pb.CreateQueueRequest, context: CallContext) -> pb.CreateQueueResponse:
        created = await self._annotation.create_queue(queue_of(request.queue, context))
        return pb.CreateQueueResponse(queue=queue_message(created))

    async def AddQueueItems(self, request: pb.AddQueueItemsRequest, context: CallContext) -> pb.AddQueueItemsResponse:
        found = ViolationCollector()
        items = [item_of(item, position, found) for position, item in enumerate(request.items)]
        found.raise_if_any()
        selector = selector_of(request.from_feedback) if request.HasField("from_feedback") else None
        added, present = await self._annotation.add_items(
            context.project(request.project), context.queue(request.queue_id), items, selector
        )
        return pb.AddQueueItemsResponse(added_count=added, already_queued_count=present)

    async def ListQueues(self, request: pb.ListQueuesRequest, context: CallContext) -> pb.ListQueuesResponse:
        queues = await self._annotation.list_queues(context.project(request.project))
        bound = context.bound_queue  # a console link for one queue sees that queue only
        return pb.ListQueuesResponse(queues=[queue_message(q) for q in queues if bound is None or q.queue_id == bound])

    async def GetQueueStats(self, request: pb.GetQueueStatsRequest, context: CallContext) -> pb.GetQueueStatsResponse:
        stats = await self._annotation.stats(context.project(request.project), context.queue(request.queue_id))
        return pb.GetQueueStatsResponse(
            total_count=stats.total,
            pending_count=stats.pending,
            in_progress_count=stats.in_progress,
            done_count=stats.done,
            reviewers=[
                pb.ReviewerStats(
                    reviewer=r.reviewer, in_progress_count=r.in_progress, done_count=r.done, skipped_count=r.skipped
                )
                for r in stats.reviewers
            ],
        )

    async def ClaimNextItem(self, request: pb.ClaimNextItemRequest, context: CallContext) -> pb.ClaimNextItemResponse:
        claimed = await self._annotation.claim_next(
            context.project(request.project), context.queue(request.queue_id), context.reviewer(request.reviewer)
        )
        return pb.ClaimNextItemResponse(
            item=item_message(claimed.item, claimed.queue),
            claim_id=claimed.claim.claim_id,
            lease_expire_time=timestamp_of(claimed.claim.lease_expire_time),
            queue=queue_message(claimed.queue),
        )

    async def SubmitAnnotation(
        self, request: pb.SubmitAnnotationRequest, context: CallContext
    ) -> pb.SubmitAnnotationResponse:
        stored = await self._annotation.submit(
            context.project(request.project),
            context.queue(request.queue_id),
            request.claim_id,
            [feedback_input(f) for f in request.feedback],
            actor=context.actor,
            reviewer=context.bound_reviewer,
        )
        return pb.SubmitAnnotationResponse(feedback=[feedback_message(f) for f in stored])

    async def SkipItem(self, request: pb.SkipItemRequest, context: CallContext) -> pb.SkipItemResponse:
        await self._annotation.skip(
            context.project(request.project),
            context.queue(request.queue_id),
            request.claim_id,
            reviewer=context.bound_reviewer,
        )
        return pb.SkipItemResponse()

    async def GetItemContext(
        self, request: pb.GetItemContextRequest, context: CallContext
    ) -> pb.GetItemContextResponse:
        seen = await self._annotation.item_context(
            context.project(request.project),
            context.queue(request.queue_id),
            request.claim_id,
            reviewer=context.bound_reviewer,
        )
        return pb.GetItemContextResponse(
            item=item_message(seen.item, seen.queue),
            user_feedback=[feedback_message(f) for f in seen.user_feedback],
            lease_expire_time=timestamp_of(seen.claim.lease_expire_time),
        )

    async def CreateConsoleLink(
        self, request: pb.CreateConsoleLinkRequest, context: CallContext
    ) -> pb.CreateConsoleLinkResponse:
        project = context.project(request.project)
        found = ViolationCollector()
        check_project(project, found)
        ttl = None
        if request.HasField("ttl"):
            try:
                ttl = request.ttl.ToTimedelta()
            except (OverflowError, ValueError):
                found.add("ttl", "must be more than 0 and at most 30 days")
        found.raise_if_any()
        await self._annotation.check_link_target(project, request.queue_id, request.reviewer, read=request.read)
        token, expire_time = self._tokens.mint_console_link(
            project=project, reviewer=request.reviewer, queue_id=request.queue_id, read=request.read, ttl=ttl
        )
        return pb.CreateConsoleLinkResponse(
            token=token, expire_time=timestamp_of(expire_time), url=console_url(self._public_url(), token)
        )

    async def GetAgreement(self, request: pb.GetAgreementRequest, context: CallContext) -> pb.GetAgreementResponse:
        found = ViolationCollector()
        start = optional_time(request, "start_time", found)
        end = optional_time(request, "end_time", found)
        found.raise_if_any()
        results = await self._annotation.agreement(
            context.project(request.project),
            queue_id=context.queue(request.queue_id),
            key=request.key,
            start_time=start,
            end_time=end,
        )
        return pb.GetAgreementResponse(
            agreements=[
                pb.KeyAgreement(
                    key=r.key,
                    method=_METHODS[r.method] if r.method else pb.AGREEMENT_METHOD_UNSPECIFIED,
                    value=r.agreement.value,
                    item_count=r.agreement.item_count,
                    reviewer_count=r.agreement.rater_count,
                    rating_count=r.agreement.rating_count,
                    disagreements=[
                        pb.ItemDisagreement(
                            trace_id=d.trace_id,
                            span_id=d.span_id,
                            trace_url=d.trace_url,
                            disagreement=d.disagreement,
                            rating_count=d.rating_count,
                            distinct_value_count=d.distinct_value_count,
                            ratings=[pb.ReviewerRating(reviewer=rater, value=value) for rater, value in d.ratings],
                        )
                        for d in r.disagreements
                    ],
                )
                for r in results
            ]
        )
