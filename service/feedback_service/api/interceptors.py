"""Per-RPC wrapping: decoding and size checks, authentication, scopes, rate limits, the call deadline,
domain errors to gRPC status, and one log line per call, beside which the call's metrics and span end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from grpc_status import rpc_status

from feedback_service.api.auth import authorize, bearer_of, set_principal
from feedback_service.api.errors import INTERNAL_STATUS, grpc_code, status_proto
from feedback_service.domain.api_keys import Authenticator
from feedback_service.domain.auth import UNAUTHENTICATED_LOCAL, Principal
from feedback_service.domain.call_context import call_deadline
from feedback_service.domain.errors import (
    FeedbackServiceError,
    FieldViolation,
    InvalidArgumentError,
    RateLimitedError,
)
from feedback_service.domain.rate_limit import RateLimiter

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from feedback_service.observability.metrics import ServerMetrics
    from feedback_service.observability.otel import Tracing

_log = structlog.get_logger("feedback_service.rpc")

UnaryBehavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
StreamBehavior = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]


class _Undecodable:
    """Stands in for a request whose bytes are not a valid message (bad wire format, bad UTF-8)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _lenient(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """A deserializer that never raises: gRPC would answer UNKNOWN; we answer INVALID_ARGUMENT."""
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as error:  # DecodeError and whatever else a parser raises
            return _Undecodable(str(error))

    return parse


# Our own bound, below gRPC's (64 MiB, which answers RESOURCE_EXHAUSTED), so that a large request gets
# a field violation that says what to do.
MAX_REQUEST_BYTES = 32 * 1024 * 1024


def _check_decoded(request: Any) -> None:
    if isinstance(request, _Undecodable):
        raise InvalidArgumentError([FieldViolation("request", f"is not a valid message: {request.reason}")])
    size = request.ByteSize()
    if size > MAX_REQUEST_BYTES:
        raise InvalidArgumentError(
            [FieldViolation("request", f"is {size} bytes, more than {MAX_REQUEST_BYTES}: split the batch")]
        )


@dataclass(frozen=True, slots=True)
class _PerServer:
    """What every call of one server shares."""

    authenticator: Authenticator | None  # None: --insecure-no-auth
    limiter: RateLimiter
    metrics: ServerMetrics | None  # None: no metrics endpoint
    tracing: Tracing | None  # None: tracing off


def _rate_key(principal: Principal) -> str:
    # Token holders are end users: each gets a budget of their own, not one shared by the token secret.
    token = principal.token
    return principal.key_id if token is None else f"token:{token.project}:{token.user}"


def _cost(method: str, request: Any) -> int:
    """Batches spend one unit per item, so a limit bounds events, not calls."""
    if method.endswith("/BatchCreateFeedback"):
        return max(1, len(request.feedback))
    return 1


class _Call:
    """Times one RPC, authenticates it, turns its exception, if any, into the status the client gets,
    and ends it in one log line, its metrics and its span."""

    def __init__(self, method: str, shared: _PerServer, request: Any, context: grpc.aio.ServicerContext) -> None:
        self.method = method
        self.started = time.perf_counter()
        self.code = grpc.StatusCode.OK
        self.key_id = ""
        self._authenticator = shared.authenticator
        self._limiter = shared.limiter
        self._metrics = None if shared.metrics is None else shared.metrics.rpc(method)
        self._tracing = shared.tracing
        self._span: Span | None = None
        if self._tracing is not None:
            self._span = self._tracing.start_rpc(method, context.invocation_metadata(), request)
        self._streaming = False

    async def admit(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        """Refuse undecodable requests, then authenticate and authorize the caller."""
        remaining = context.time_remaining()
        call_deadline.set(None if remaining is None else time.monotonic() + remaining)
        _check_decoded(request)
        if self._authenticator is None:  # --insecure-no-auth
            set_principal(UNAUTHENTICATED_LOCAL)
            return
        principal = await self._authenticator.authenticate(bearer_of(context.invocation_metadata(), request))
        self.key_id = principal.key_id
        authorize(principal, self.method)
        set_principal(principal)
        try:
            self._limiter.charge(_rate_key(principal), _cost(self.method, request))
        except RateLimitedError:
            if self._metrics is not None:
                self._metrics.rate_limited()
            raise

    async def fail(self, context: grpc.aio.ServicerContext, error: BaseException) -> None:
        if isinstance(error, FeedbackServiceError):
            self.code = grpc_code(error)
            await context.abort_with_status(rpc_status.to_status(status_proto(error)))
        if isinstance(error, grpc.aio.AbortError):  # the servicer aborted with its own status
            self.code = context.code() or grpc.StatusCode.UNKNOWN
            return
        self.code = grpc.StatusCode.INTERNAL
        _log.exception("rpc_failed", method=self.method)
        if self._span is not None:
            self._span.record_exception(error)
        await context.abort_with_status(rpc_status.to_status(INTERNAL_STATUS))

    def stream_opened(self) -> None:
        if self._metrics is not None:
            self._metrics.stream_opened()
            self._streaming = True

    def finish(self) -> None:
        """The RPC's one log line (with trace ids when tracing), then its metrics and the end of its span."""
        duration_s = time.perf_counter() - self.started
        _log.info(
            "rpc", method=self.method, code=self.code.name, duration_ms=round(duration_s * 1000, 3), key_id=self.key_id
        )
        if self._metrics is not None:
            if self._streaming:
                self._metrics.stream_closed()
            self._metrics.finished(self.code, duration_s)
        if self._span is not None and self._tracing is not None:
            self._tracing.end_rpc(self._span, self.code)


def _wrap_unary(method: str, behavior: UnaryBehavior, shared: _PerServer) -> UnaryBehavior:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
        call = _Call(method, shared, request, context)
        try:
            await call.admit(request, context)
            return await behavior(request, context)
        except asyncio.CancelledError:
            call.code = grpc.StatusCode.CANCELLED
            raise
        except Exception as error:
            await call.fail(context, error)
            raise
        finally:
            call.finish()

    return wrapped


def _wrap_stream(method: str, behavior: StreamBehavior, shared: _PerServer) -> StreamBehavior:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        call = _Call(method, shared, request, context)
        try:
            await call.admit(request, context)
            call.stream_opened()
            async for response in behavior(request, context):
                yield response
        except asyncio.CancelledError:
            call.code = grpc.StatusCode.CANCELLED
            raise
        except Exception as error:
            await call.fail(context, error)
            raise
        finally:
            call.finish()

    return wrapped


class ErrorAndLoggingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpcio is untyped
    """Authenticates every call (unless ``authenticator`` is None: auth off), lets servicers raise domain
    errors, and ends every RPC in exactly one log line; with ``metrics`` and ``tracing`` (None: off) also
    in its metrics and its span."""

    def __init__(
        self,
        authenticator: Authenticator | None,
        limiter: RateLimiter,
        *,
        metrics: ServerMetrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._shared = _PerServer(authenticator, limiter, metrics, tracing)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not method.startswith("/feedback."):
            return handler  # health and reflection keep their own behaviour
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(method, handler.unary_unary, self._shared),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(method, handler.unary_stream, self._shared),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler
