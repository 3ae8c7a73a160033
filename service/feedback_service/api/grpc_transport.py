"""gRPC: every RPC of the table as a grpc.aio method handler that runs the shared call steps
(api/calls.py) around its servicer method and puts the resulting status in the trailers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
from grpc_status import rpc_status

from feedback_service.api.calls import CallPolicy, CallRun, Transport, Undecodable
from feedback_service.api.rpcs import Rpc, StreamHandler, UnaryHandler, services_of

__all__ = ["add_rpcs"]


def _lenient(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """A deserializer that never raises: gRPC would answer UNKNOWN; admit() answers INVALID_ARGUMENT."""

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as error:  # DecodeError and whatever else a parser raises
            return Undecodable(str(error))

    return parse


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


async def _abort(run: CallRun, context: grpc.aio.ServicerContext, error: Exception) -> None:
    """Raises grpc's AbortError, which ends the call with ``error``'s status."""
    await context.abort_with_status(rpc_status.to_status(run.failed(error)))


def _unary(rpc: Rpc, handler: UnaryHandler, policy: CallPolicy) -> Callable[..., Any]:
    method = rpc.path

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        metadata = context.invocation_metadata()
        run = policy.begin(method, Transport.GRPC, metadata, request, peer=context.peer())
        try:
            call_context = await run.admit(request, deadline=_deadline(context))
            return await handler(request, call_context)
        except asyncio.CancelledError:
            run.ended_with(grpc.StatusCode.CANCELLED)
            raise
        except Exception as error:
            await _abort(run, context, error)
            raise
        finally:
            run.finish()

    return call


def _stream(rpc: Rpc, handler: StreamHandler, policy: CallPolicy) -> Callable[..., AsyncIterator[Any]]:
    method = rpc.path

    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        metadata = context.invocation_metadata()
        run = policy.begin(method, Transport.GRPC, metadata, request, peer=context.peer())
        try:
            call_context = await run.admit(request, deadline=_deadline(context))
            async for response in run.stream(request, handler(request, call_context)):
                yield response
        except (asyncio.CancelledError, GeneratorExit):  # GeneratorExit: grpc stopped reading, the client left
            run.ended_with(grpc.StatusCode.CANCELLED)
            raise
        except Exception as error:
            await _abort(run, context, error)
            raise
        finally:
            run.finish()

    return call


def _handler(rpc: Rpc, policy: CallPolicy) -> grpc.RpcMethodHandler:
    deserialize = _lenient(rpc.request_type.FromString)
    serialize = rpc.response_type.SerializeToString
    if rpc.unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _unary(rpc, rpc.unary, policy), request_deserializer=deserialize, response_serializer=serialize
        )
    assert rpc.stream is not None  # rpcs_of sets one of the two
    return grpc.unary_stream_rpc_method_handler(
        _stream(rpc, rpc.stream, policy), request_deserializer=deserialize, response_serializer=serialize
    )


def add_rpcs(server: grpc.aio.Server, rpcs: Sequence[Rpc], policy: CallPolicy) -> None:
    """Serve ``rpcs`` on ``server`` (before it starts), every call through ``policy``."""
    for service, methods in services_of(rpcs).items():
        handlers = {rpc.name: _handler(rpc, policy) for rpc in methods}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
        server.add_registered_method_handlers(service, handlers)
