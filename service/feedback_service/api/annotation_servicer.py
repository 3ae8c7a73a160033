"""feedback.v1.AnnotationService: queues, claims, annotations and reviewer agreement."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from feedback_proto.v1 import annotation_pb2 as pb
from feedback_service.api.calls import CallContext
from feedback_service.api.convert import checked_time, feedback_input, feedback_message, timestamp_of
from feedback_service.domain.agreement import Method
from feedback_service.domain.annotation import DEFAULT_LEASE, FeedbackSelector, Queue, QueueItem
from feedback_service.domain.annotation_ops import AnnotationOperations
from feedback_service.domain.model import Source, Thumb
from feedback_service.domain.validation import ViolationCollector

_METHODS = {
    Method.COHEN_KAPPA: pb.AGREEMENT_METHOD_COHEN_KAPPA,
    Method.KRIPPENDORFF_ALPHA_NOMINAL: pb.AGREEMENT_METHOD_KRIPPENDORFF_ALPHA_NOMINAL,
    Method.KRIPPENDORFF_ALPHA_INTERVAL: pb.AGREEMENT_METHOD_KRIPPENDORFF_ALPHA_INTERVAL,
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
    )
    message.lease.FromTimedelta(queue.lease)
    return message


def item_message(item: QueueItem) -> pb.QueueItem:
    return pb.QueueItem(
        item_id=item.item_id,
        trace_id=item.trace_id,
        span_id=item.span_id,
        model=item.model,
        model_version=item.model_version,
        add_time=timestamp_of(item.add_time),
    )


def _time(message: Any, field: str, name: str, found: ViolationCollector) -> Any:
    stamp: Timestamp = getattr(message, field)
    return checked_time(stamp, name, found) if message.HasField(field) else None


def selector_of(message: pb.FeedbackSelector) -> FeedbackSelector:
    found = ViolationCollector("from_feedback")
    if message.thumb not in {t.value for t in Thumb}:
        found.add("thumb", f"unknown thumb {message.thumb}")
    if message.source not in {s.value for s in Source}:
        found.add("source", f"unknown source {message.source}")
    start = _time(message, "start_time", "start_time", found)
    end = _time(message, "end_time", "end_time", found)
    found.raise_if_any()
    return FeedbackSelector(
        model=message.model,
        model_version=message.model_version,
        key=message.key,
        thumb=Thumb(message.thumb),
        source=Source(message.source),
        start_time=start,
        end_time=end,
        limit=message.limit or 1000,
    )


class AnnotationServicer:
    def __init__(self, annotation: AnnotationOperations) -> None:
        self._annotation = annotation

    async def CreateQueue(self, request: pb.CreateQueueRequest, context: CallContext) -> pb.CreateQueueResponse:
        created = await self._annotation.create_queue(queue_of(request.queue, context))
        return pb.CreateQueueResponse(queue=queue_message(created))

    async def AddQueueItems(self, request: pb.AddQueueItemsRequest, context: CallContext) -> pb.AddQueueItemsResponse:
        items = [
            QueueItem(trace_id=i.trace_id, span_id=i.span_id, model=i.model, model_version=i.model_version)
            for i in request.items
        ]
        selector = selector_of(request.from_feedback) if request.HasField("from_feedback") else None
        added, present = await self._annotation.add_items(
            context.project(request.project), request.queue_id, items, selector
        )
        return pb.AddQueueItemsResponse(added_count=added, already_queued_count=present)

    async def ListQueues(self, request: pb.ListQueuesRequest, context: CallContext) -> pb.ListQueuesResponse:
        queues = await self._annotation.list_queues(context.project(request.project))
        return pb.ListQueuesResponse(queues=[queue_message(q) for q in queues])

    async def GetQueueStats(self, request: pb.GetQueueStatsRequest, context: CallContext) -> pb.GetQueueStatsResponse:
        stats = await self._annotation.stats(context.project(request.project), request.queue_id)
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
            context.project(request.project), request.queue_id, request.reviewer
        )
        return pb.ClaimNextItemResponse(
            item=item_message(claimed.item),
            claim_id=claimed.claim.claim_id,
            lease_expire_time=timestamp_of(claimed.claim.lease_expire_time),
            queue=queue_message(claimed.queue),
        )

    async def SubmitAnnotation(
        self, request: pb.SubmitAnnotationRequest, context: CallContext
    ) -> pb.SubmitAnnotationResponse:
        stored = await self._annotation.submit(
            context.project(request.project),
            request.queue_id,
            request.claim_id,
            [feedback_input(f) for f in request.feedback],
            actor=context.actor,
        )
        return pb.SubmitAnnotationResponse(feedback=[feedback_message(f) for f in stored])

    async def SkipItem(self, request: pb.SkipItemRequest, context: CallContext) -> pb.SkipItemResponse:
        await self._annotation.skip(context.project(request.project), request.queue_id, request.claim_id)
        return pb.SkipItemResponse()

    async def GetAgreement(self, request: pb.GetAgreementRequest, context: CallContext) -> pb.GetAgreementResponse:
        found = ViolationCollector()
        start = _time(request, "start_time", "start_time", found)
        end = _time(request, "end_time", "end_time", found)
        found.raise_if_any()
        results = await self._annotation.agreement(
            context.project(request.project), queue_id=request.queue_id, key=request.key, start_time=start, end_time=end
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
                )
                for r in results
            ]
        )
