"""Client-side interceptors that send an API key with every call, for test channels."""

from __future__ import annotations

import secrets
from typing import Any

import grpc

# The bootstrap admin key of the test servers: every scope on every project.
ADMIN_KEY = f"test-admin-{secrets.token_hex(16)}"
# The secrets test servers sign and verify end-user feedback tokens with (the first signs).
TOKEN_SECRET = secrets.token_urlsafe(32)
OLD_TOKEN_SECRET = secrets.token_urlsafe(32)
# The one origin whose pages may call the HTTP face of the session server (FEEDBACK_CORS_ORIGINS).
ALLOWED_ORIGIN = "https://app.example.com"


def _with_key(details: Any, key: str) -> Any:
    metadata = grpc.aio.Metadata(*(details.metadata or ()), ("authorization", f"Bearer {key}"))
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


# grpc.aio sorts a channel's interceptors by kind with isinstance/elif, so one class per kind.
class _UnaryBearer(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]  # grpcio is untyped
    def __init__(self, key: str) -> None:
        self._key = key

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_key(details, self._key), request)


class _StreamBearer(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]  # grpcio is untyped
    def __init__(self, key: str) -> None:
        self._key = key

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_key(details, self._key), request)


def authorized_channel(target: str, key: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, interceptors=[_UnaryBearer(key), _StreamBearer(key)])
