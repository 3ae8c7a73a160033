"""feedback.v1.FeedbackKeyService: define, read, change and archive feedback key schemas."""

from __future__ import annotations

from feedback_proto.v1 import feedback_keys_pb2 as pb
from feedback_service.api.calls import CallContext
from feedback_service.api.convert import timestamp_of
from feedback_service.domain.keys.registry import KeySchemaOperations
from feedback_service.domain.keys.schemas import KeyKind, KeySchema
from feedback_service.domain.model import enum_member


def schema_of(message: pb.FeedbackKey, context: CallContext) -> KeySchema:
    return KeySchema(
        project=context.project(message.project),
        name=message.name,
        kind=enum_member(KeyKind, message.kind) or KeyKind.UNSPECIFIED,
        description=message.description,
        higher_is_better=message.higher_is_better,
        score_min=message.score_min,
        score_max=message.score_max,
        score_step=message.score_step,
        labels=tuple(message.labels),
    )


def key_message(schema: KeySchema) -> pb.FeedbackKey:
    return pb.FeedbackKey(
        project=schema.project,
        name=schema.name,
        kind=pb.FeedbackKeyKind.ValueType(schema.kind.value),
        description=schema.description,
        higher_is_better=schema.higher_is_better,
        score_min=schema.score_min,
        score_max=schema.score_max,
        score_step=schema.score_step,
        labels=list(schema.labels),
        archived=schema.archived,
        create_time=timestamp_of(schema.create_time),
        update_time=timestamp_of(schema.update_time),
    )


class FeedbackKeyServicer:
    def __init__(self, keys: KeySchemaOperations) -> None:
        self._keys = keys

    async def CreateFeedbackKey(
        self, request: pb.CreateFeedbackKeyRequest, context: CallContext
    ) -> pb.CreateFeedbackKeyResponse:
        created = await self._keys.create(schema_of(request.feedback_key, context))
        return pb.CreateFeedbackKeyResponse(feedback_key=key_message(created))

    async def GetFeedbackKey(
        self, request: pb.GetFeedbackKeyRequest, context: CallContext
    ) -> pb.GetFeedbackKeyResponse:
        found = await self._keys.get(context.project(request.project), request.name)
        return pb.GetFeedbackKeyResponse(feedback_key=key_message(found))

    async def ListFeedbackKeys(
        self, request: pb.ListFeedbackKeysRequest, context: CallContext
    ) -> pb.ListFeedbackKeysResponse:
        project = context.project(request.project)
        schemas = await self._keys.list(project, show_archived=request.show_archived)
        return pb.ListFeedbackKeysResponse(feedback_keys=[key_message(s) for s in schemas])

    async def UpdateFeedbackKey(
        self, request: pb.UpdateFeedbackKeyRequest, context: CallContext
    ) -> pb.UpdateFeedbackKeyResponse:
        updated = await self._keys.update(schema_of(request.feedback_key, context), list(request.update_mask.paths))
        return pb.UpdateFeedbackKeyResponse(feedback_key=key_message(updated))

    async def ArchiveFeedbackKey(
        self, request: pb.ArchiveFeedbackKeyRequest, context: CallContext
    ) -> pb.ArchiveFeedbackKeyResponse:
        archived = await self._keys.archive(context.project(request.project), request.name)
        return pb.ArchiveFeedbackKeyResponse(feedback_key=key_message(archived))
