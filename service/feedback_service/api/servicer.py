"""feedback.v1.FeedbackService: each RPC converts its request, calls the domain, converts the answer.

Transport-neutral: every method takes the request message and the CallContext of api/calls.py, and is
served by gRPC and by Connect/gRPC-Web alike (api/rpcs.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

from feedback_client.tokens import VALUE_KINDS
from feedback_proto.v1 import feedback_pb2
from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_service.api.calls import CallContext
from feedback_service.api.convert import (
    feedback_filter,
    feedback_input,
    feedback_message,
    put_created_feedback,
    timestamp_of,
)
from feedback_service.api.errors import status_proto
from feedback_service.api.evaluation_convert import (
    aggregate_query,
    aggregate_response,
    compare_scope,
    comparison_message,
    export_filter,
)
from feedback_service.domain.access.feedback_tokens import TokenAuthority, bind_to_token
from feedback_service.domain.errors import FeedbackServiceError
from feedback_service.domain.evaluation.aggregates import FeedbackScope
from feedback_service.domain.evaluation.operations import (
    Beat,
    EvaluationOperations,
    GroupUpdate,
    SnapshotDone,
)
from feedback_service.domain.feedback.operations import FeedbackOperations
from feedback_service.domain.model import FeedbackInput
from feedback_service.domain.ports import CreateOutcome, CreateStatus
from feedback_service.domain.validation import ViolationCollector, check_project

_VALUE_KINDS = {
    pb.VALUE_KIND_THUMB: "thumb",
    pb.VALUE_KIND_SCORE: "score",
    pb.VALUE_KIND_LABEL: "label",
    pb.VALUE_KIND_COMMENT: "comment",
    pb.VALUE_KIND_CORRECTION: "correction",
}


def _own(draft: FeedbackInput, context: CallContext) -> FeedbackInput:
    return dataclasses.replace(draft, project=context.project(draft.project))


def _own_scope(scope: FeedbackScope, context: CallContext) -> FeedbackScope:
    return dataclasses.replace(scope, project=context.project(scope.project))


def _put_stored(message: feedback_pb2.Feedback, sent: feedback_pb2.Feedback, outcome: CreateOutcome) -> None:
    """``message`` := the feedback stored for the request item ``sent``."""
    if outcome.status is CreateStatus.CREATED:
        put_created_feedback(message, sent, outcome.feedback)
    else:  # a retry: the earlier record, which may differ from this request (times, a token's bindings)
        message.CopyFrom(feedback_message(outcome.feedback))


class FeedbackServicer:
    def __init__(
        self, operations: FeedbackOperations, evaluation: EvaluationOperations, tokens: TokenAuthority
    ) -> None:
        self._operations = operations
        self._evaluation = evaluation
        self._tokens = tokens

    async def CreateFeedback(
        self, request: pb.CreateFeedbackRequest, context: CallContext
    ) -> pb.CreateFeedbackResponse:
        draft = feedback_input(request.feedback)
        token = context.token
        owned = _own(draft, context) if token is None else bind_to_token(draft, token)
        outcome = await self._operations.create(owned, actor=context.actor)
        response = pb.CreateFeedbackResponse()
        _put_stored(response.feedback, request.feedback, outcome)
        return response

    async def BatchCreateFeedback(
        self, request: pb.BatchCreateFeedbackRequest, context: CallContext
    ) -> pb.BatchCreateFeedbackResponse:
        sent = request.feedback
        outcomes = await self._operations.batch_create(
            [feedback_input(item, project=context.project(item.project)) for item in sent],
            actor=context.actor,
        )
        # Built in place: constructing each result and then the response would copy every message twice.
        response = pb.BatchCreateFeedbackResponse()
        results = response.results
        for item, outcome in zip(sent, outcomes, strict=True):
            if isinstance(outcome, FeedbackServiceError):
                results.add(error=status_proto(outcome))
            else:
                _put_stored(results.add().feedback, item, outcome)
        return response

    async def GetFeedback(self, request: pb.GetFeedbackRequest, context: CallContext) -> pb.GetFeedbackResponse:
        stored = await self._operations.get(context.project(request.project), request.feedback_id)
        return pb.GetFeedbackResponse(feedback=feedback_message(stored))

    async def ListFeedback(self, request: pb.ListFeedbackRequest, context: CallContext) -> pb.ListFeedbackResponse:
        list_filter = feedback_filter(request)
        list_filter = dataclasses.replace(list_filter, project=context.project(list_filter.project))
        page, next_token = await self._operations.list(
            list_filter, page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListFeedbackResponse(feedback=[feedback_message(f) for f in page], next_page_token=next_token)

    async def UpdateFeedback(
        self, request: pb.UpdateFeedbackRequest, context: CallContext
    ) -> pb.UpdateFeedbackResponse:
        updated = await self._operations.update(
            _own(feedback_input(request.feedback), context), list(request.update_mask.paths), actor=context.actor
        )
        return pb.UpdateFeedbackResponse(feedback=feedback_message(updated))

    async def DeleteFeedback(
        self, request: pb.DeleteFeedbackRequest, context: CallContext
    ) -> pb.DeleteFeedbackResponse:
        await self._operations.delete(context.project(request.project), request.feedback_id, actor=context.actor)
        return pb.DeleteFeedbackResponse()

    async def StreamAggregates(
        self, request: pb.StreamAggregatesRequest, context: CallContext
    ) -> AsyncIterator[pb.StreamAggregatesResponse]:
        query = aggregate_query(request)
        query = dataclasses.replace(query, scope=_own_scope(query.scope, context))
        events = self._evaluation.stream_aggregates(query, follow=request.follow)
        async for event in events:
            if isinstance(event, GroupUpdate):
                yield aggregate_response(event)
            elif isinstance(event, SnapshotDone):
                done = pb.SnapshotComplete(watermark=timestamp_of(event.watermark), group_count=event.group_count)
                yield pb.StreamAggregatesResponse(snapshot_complete=done)
            elif isinstance(event, Beat):
                yield pb.StreamAggregatesResponse(heartbeat=pb.Heartbeat(watermark=timestamp_of(event.watermark)))

    async def ExportFeedback(
        self, request: pb.ExportFeedbackRequest, context: CallContext
    ) -> AsyncIterator[pb.ExportFeedbackResponse]:
        selection = export_filter(request)
        selection = dataclasses.replace(selection, scope=_own_scope(selection.scope, context))
        chunks = self._evaluation.export(
            selection, cursor=request.cursor, follow=request.follow, chunk_size=request.chunk_size
        )
        async for chunk in chunks:
            response = pb.ExportFeedbackResponse(cursor=chunk.cursor)
            add = response.feedback.add
            for feedback in chunk.feedback:
                feedback_message(feedback, add)
            yield response

    async def CompareVersions(
        self, request: pb.CompareVersionsRequest, context: CallContext
    ) -> pb.CompareVersionsResponse:
        scope = compare_scope(request)
        comparisons = await self._evaluation.compare(
            dataclasses.replace(scope, project=context.project(scope.project)),
            model=request.model,
            version_a=request.version_a,
            version_b=request.version_b,
        )
        return pb.CompareVersionsResponse(comparisons=[comparison_message(c) for c in comparisons])

    async def MintFeedbackToken(
        self, request: pb.MintFeedbackTokenRequest, context: CallContext
    ) -> pb.MintFeedbackTokenResponse:
        found = ViolationCollector()
        project = context.project(request.project)
        check_project(project, found)
        kinds = []
        for number in request.value_kinds:
            if number in _VALUE_KINDS:
                kinds.append(_VALUE_KINDS[number])
            else:
                found.add("value_kinds", f"unknown value kind {number}")
        found.raise_if_any()
        token, expire_time = self._tokens.mint(
            project=project,
            trace_id=request.trace_id,
            user_id=request.user_id,
            keys=list(request.keys),
            value_kinds=kinds or list(VALUE_KINDS),
            span_id=request.span_id,
            model=request.model,
            model_version=request.model_version,
            ttl_s=request.ttl.seconds if request.HasField("ttl") else None,  # any int64: checked by the domain
        )
        return pb.MintFeedbackTokenResponse(token=token, expire_time=timestamp_of(expire_time))
