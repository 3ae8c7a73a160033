"""feedback.v1.ApiKeyService: create, list and revoke API keys."""

from __future__ import annotations

from feedback_proto.v1 import api_keys_pb2 as pb
from feedback_service.api.calls import CallContext
from feedback_service.api.convert import timestamp_of
from feedback_service.domain.access.api_keys import ApiKey
from feedback_service.domain.access.auth import Scope
from feedback_service.domain.access.key_admin import ApiKeyOperations
from feedback_service.domain.validation import ViolationCollector

_SCOPES = {
    pb.SCOPE_INGEST: Scope.INGEST,
    pb.SCOPE_ANNOTATE: Scope.ANNOTATE,
    pb.SCOPE_READ: Scope.READ,
    pb.SCOPE_ADMIN: Scope.ADMIN,
}
_SCOPE_NUMBERS = {scope: number for number, scope in _SCOPES.items()}


def _key_message(key: ApiKey) -> pb.ApiKey:
    return pb.ApiKey(
        key_id=key.key_id,
        project=key.project,
        name=key.name,
        scopes=sorted(_SCOPE_NUMBERS[s] for s in key.scopes),
        create_time=timestamp_of(key.create_time),
        revoke_time=timestamp_of(key.revoke_time),
    )


class ApiKeyServicer:
    def __init__(self, keys: ApiKeyOperations) -> None:
        self._keys = keys

    async def CreateApiKey(self, request: pb.CreateApiKeyRequest, context: CallContext) -> pb.CreateApiKeyResponse:
        found = ViolationCollector()
        for number in request.scopes:
            if number not in _SCOPES:
                found.add("scopes", f"unknown scope {number}: use ingest, annotate, read or admin")
        found.raise_if_any()
        key, secret = await self._keys.create(
            context.principal, project=request.project, name=request.name, scopes=[_SCOPES[n] for n in request.scopes]
        )
        return pb.CreateApiKeyResponse(api_key=_key_message(key), key=secret)

    async def ListApiKeys(self, request: pb.ListApiKeysRequest, context: CallContext) -> pb.ListApiKeysResponse:
        keys = await self._keys.list(context.principal, project=request.project)
        return pb.ListApiKeysResponse(api_keys=[_key_message(k) for k in keys])

    async def RevokeApiKey(self, request: pb.RevokeApiKeyRequest, context: CallContext) -> pb.RevokeApiKeyResponse:
        revoked = await self._keys.revoke(context.principal, key_id=request.key_id)
        return pb.RevokeApiKeyResponse(api_key=_key_message(revoked))
