"""Per-RPC wrapping: domain errors to gRPC status, and one log line per call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog
from grpc_status import rpc_status

from feedback_service.api.errors import INTERNAL_STATUS, grpc_code, status_proto
from feedback_service.domain.errors import FeedbackServiceError, FieldViolation, InvalidArgumentError

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


def _check_decoded(request: Any) -> None:
    if isinstance(request, _Undecodable):
        raise InvalidArgumentError([FieldViolation("request", f"is not a valid message: {request.reason}")])


class _Call:
    """Times one RPC and turns its exception, if any, into the status the client gets."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.started = time.perf_counter()
        self.code = grpc.StatusCode.OK

    async def fail(self, context: grpc.aio.ServicerContext, error: BaseException) -> None:
        if isinstance(error, FeedbackServiceError):
            self.code = grpc_code(error)
            await context.abort_with_status(rpc_status.to_status(status_proto(error)))
        if isinstance(error, grpc.aio.AbortError):  # the servicer aborted with its own status
            self.code = context.code() or grpc.StatusCode.UNKNOWN
            return
        self.code = grpc.StatusCode.INTERNAL
        _log.exception("rpc_failed", method=self.method)
        await context.abort_with_status(rpc_status.to_status(INTERNAL_STATUS))

    def log(self) -> None:
        duration_ms = round((time.perf_counter() - self.started) * 1000, 3)
        _log.info("rpc", method=self.method, code=self.code.name, duration_ms=duration_ms)


def _wrap_unary(method: str, behavior: UnaryBehavior) -> UnaryBehavior:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
        call = _Call(method)
        try:
            _check_decoded(request)
            return await behavior(request, context)
        except asyncio.CancelledError:
            call.code = grpc.StatusCode.CANCELLED
            raise
        except Exception as error:
            await call.fail(context, error)
            raise
        finally:
            call.log()

    return wrapped


def _wrap_stream(method: str, behavior: StreamBehavior) -> StreamBehavior:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        call = _Call(method)
        try:
            _check_decoded(request)
            async for response in behavior(request, context):
                yield response
        except asyncio.CancelledError:
            call.code = grpc.StatusCode.CANCELLED
            raise
        except Exception as error:
            await call.fail(context, error)
            raise
        finally:
            call.log()

    return wrapped


class ErrorAndLoggingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpcio is untyped
    """Lets servicers raise domain errors; every RPC ends in exactly one log line."""

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
                _wrap_unary(method, handler.unary_unary),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(method, handler.unary_stream),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler
