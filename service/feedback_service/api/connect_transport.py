"""Connect (JSON and binary, unary and server streaming) and gRPC-Web: every RPC of the table on
connectrpc's ASGI application, through the same call steps as gRPC (api/calls.py).

connectrpc reads the request, applies ``Connect-Timeout-Ms`` / ``grpc-timeout`` and writes responses
and errors in each protocol's format. This module adds what makes a call the same call on either
port: a metadata interceptor starts the CallRun before the body is read and, once the call is over,
turns the error into the same status with the same details (``ErrorInfo``, ``BadRequest``,
``RetryInfo``) that gRPC sends, and writes the one log line; each endpoint admits the call and hands
the servicer its CallContext. The messages are the project's generated ``google.protobuf`` classes
(connectrpc's compat codecs), so both transports share one set of generated code.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
from connectrpc.code import Code
from connectrpc.compat import google_protobuf_binary_codec
from connectrpc.errors import ConnectError, ErrorDetail
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import Headers, RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint
from protobuf.wkt import Any as WireAny

from feedback_service.api.calls import CallPolicy, CallRun, Transport, Undecodable
from feedback_service.api.fast_json import message_from_json, message_to_json
from feedback_service.api.rpcs import Rpc

__all__ = ["MAX_HTTP_MESSAGE_BYTES", "RpcApplication"]

# As on the gRPC port: beyond it, RESOURCE_EXHAUSTED before the request is decoded (our own, more
# helpful limit on the decoded request, calls.MAX_REQUEST_BYTES, is lower).
MAX_HTTP_MESSAGE_BYTES = 64 * 1024 * 1024

# The run of the call this task serves: started by the interceptor, admitted by the endpoint.
_current_run: contextvars.ContextVar[CallRun] = contextvars.ContextVar("connect_call_run")

_TO_CONNECT = {code: Code[code.name.replace("CANCELLED", "CANCELED")] for code in grpc.StatusCode if code.value[0]}
_FROM_CONNECT = {connect: code for code, connect in _TO_CONNECT.items()}
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


class _Lenient:
    """A codec whose decode never raises, so that a bad body is the same INVALID_ARGUMENT with the same
    field violation as on gRPC (see calls.Undecodable)."""

    def __init__(self, codec: Any) -> None:
        self._codec = codec

    def name(self) -> str:
        return str(self._codec.name())

    def encode(self, message: Any) -> bytes:
        return bytes(self._codec.encode(message))

    def decode(self, data: bytes | bytearray, message_class: type[Any]) -> Any:
        try:
            return self._codec.decode(data, message_class)
        except Exception as error:  # DecodeError, ParseError, UnicodeDecodeError, ...
            return Undecodable(str(error))


class _Json:
    """Protobuf JSON of the generated google.protobuf messages, as json_format writes and reads it, only
    faster (api/fast_json.py) and on one line; unknown fields are ignored, as the binary format does."""

    def name(self) -> str:
        return "json"

    def encode(self, message: Any) -> bytes:
        return message_to_json(message)

    def decode(self, data: bytes | bytearray, message_class: type[Any]) -> Any:
        if not data.strip():  # no body: the empty message, as in the binary format
            return message_class()
        return message_from_json(data, message_class)


def _transport_of(headers: Headers) -> Transport:
    grpc_web = headers.get("content-type", "").startswith("application/grpc-web")
    return Transport.GRPC_WEB if grpc_web else Transport.CONNECT


def _wire_error(run: CallRun, error: Exception) -> ConnectError | None:
    """The error to send instead of ``error`` (None: send it as it is), recorded as the run's code."""
    if isinstance(error, ConnectError):  # connectrpc's own: a deadline, a client gone, a body too large
        run.ended_with(_FROM_CONNECT.get(error.code, grpc.StatusCode.UNKNOWN))
        return None
    status = run.failed(error)
    details = [ErrorDetail(WireAny(type_url=detail.type_url, value=detail.value)) for detail in status.details]
    code = _TO_CONNECT.get(_BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN), Code.UNKNOWN)
    return ConnectError(code, status.message, details)


class _CallSteps:
    """A connectrpc metadata interceptor: it runs before the request body is read and ends after the
    response (or the error) is settled, so its log line also covers requests connectrpc refuses itself."""

    def __init__(self, policy: CallPolicy) -> None:
        self._policy = policy

    async def on_start(self, ctx: RequestContext[Any, Any]) -> CallRun:
        method = f"/{ctx.method.service_name}/{ctx.method.name}"
        headers = ctx.request_headers
        run = self._policy.begin(
            method, _transport_of(headers), list(headers.allitems()), peer=ctx.client_address or ""
        )
        _current_run.set(run)
        return run

    async def on_end(self, run: CallRun, ctx: RequestContext[Any, Any], error: Exception | None, /) -> None:
        try:
            replacement = None if error is None else _wire_error(run, error)
        finally:
            run.finish()
        if replacement is not None:
            raise replacement  # connectrpc sends an error raised here in place of the original one


class RpcApplication(ConnectASGIApplication[Sequence[Rpc]]):
    """The ASGI application of every RPC in the table, at ``/<service>/<method>``.

    ``is_cross_origin(headers)`` tells whether a request comes from a browser page of another origin,
    where API keys are refused (see CallRun.admit).
    """

    def __init__(self, rpcs: Sequence[Rpc], policy: CallPolicy, *, is_cross_origin: Callable[[Headers], bool]) -> None:
        self._is_cross_origin = is_cross_origin
        super().__init__(
            service=rpcs,
            endpoints=self._rpc_endpoints,
            interceptors=[_CallSteps(policy)],
            read_max_bytes=MAX_HTTP_MESSAGE_BYTES,
            codecs=[_Lenient(google_protobuf_binary_codec()), _Lenient(_Json())],
        )

    @property
    def path(self) -> str:
        return "/"

    def _rpc_endpoints(self, rpcs: Sequence[Rpc]) -> Mapping[str, Any]:
        return {rpc.path: self._endpoint(rpc) for rpc in rpcs}

    def _endpoint(self, rpc: Rpc) -> Endpoint[Any, Any]:
        info = MethodInfo(
            name=rpc.name,
            service_name=rpc.service,
            input=rpc.request_type,
            output=rpc.response_type,
            idempotency_level=IdempotencyLevel.NO_SIDE_EFFECTS if rpc.no_side_effects else IdempotencyLevel.UNKNOWN,
            stream_type=StreamType.UNARY if rpc.unary is not None else StreamType.SERVER_STREAM,
        )
        if rpc.unary is not None:
            return Endpoint.unary(info, self._unary(rpc.unary))
        assert rpc.stream is not None  # rpcs_of sets one of the two
        return Endpoint.server_stream(info, self._stream(rpc.stream))

    async def _admit(self, request: Any, ctx: RequestContext[Any, Any]) -> Any:
        remaining_ms = ctx.timeout_ms
        deadline = None if remaining_ms is None else time.monotonic() + remaining_ms / 1000
        cross_origin = self._is_cross_origin(ctx.request_headers)
        return await _current_run.get().admit(request, deadline=deadline, cross_origin=cross_origin)

    def _unary(self, handler: Callable[[Any, Any], Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def call(request: Any, ctx: RequestContext[Any, Any]) -> Any:
            return await handler(request, await self._admit(request, ctx))

        return call

    def _stream(self, handler: Callable[[Any, Any], AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        async def call(request: Any, ctx: RequestContext[Any, Any]) -> AsyncIterator[Any]:
            context = await self._admit(request, ctx)
            run = _current_run.get()
            try:
                async for response in run.stream(request, handler(request, context)):
                    yield response
            except GeneratorExit:  # closed before its end: the client went away
                run.ended_with(grpc.StatusCode.CANCELLED)
                raise

        return call
