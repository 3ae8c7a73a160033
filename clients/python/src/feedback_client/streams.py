"""Server streams that survive disconnects: StreamAggregates reopens, ExportFeedback resumes at its cursor."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message as ProtoMessage

from feedback_client.errors import FeedbackError
from feedback_client.retry import TRANSIENT_CODES, RetryPolicy
from feedback_proto.v1 import feedback_service_pb2

# A reopened stream is a new call with its own deadline, so only transient codes reopen it; a stream
# that ran out of its deadline ends with DEADLINE_EXCEEDED.
_RESUME_CODES = TRANSIENT_CODES

OpenCall = Callable[[Any], Any]
Message = TypeVar("Message", bound=ProtoMessage)


async def _messages(open_call: OpenCall, request: Any) -> AsyncIterator[Any]:
    """One call's messages, FeedbackError instead of raw gRPC errors; the call is cancelled when left."""
    call = open_call(request)
    try:
        async for message in call:
            yield message
    except grpc.aio.AioRpcError as error:
        raise FeedbackError.from_rpc_error(error) from None
    finally:
        call.cancel()


def _reopen_delay(error: FeedbackError, retry: RetryPolicy | None, attempt: int, since: float) -> float:
    """How long to wait before reopening, or raise ``error`` when the stream must not be reopened."""
    if retry is None or error.code not in _RESUME_CODES:
        raise error
    delay = retry.backoff_s(attempt, error)
    if not retry.allows(attempt + 1, since, delay):
        raise error
    return delay


async def resumable(
    open_call: OpenCall,
    request: Message,
    retry: RetryPolicy | None,
    remember: Callable[[Message, Any], None] | None = None,
) -> AsyncIterator[Any]:
    """A server stream, reopened after transient failures while ``retry`` allows.

    ``remember(request, message)`` updates the request after each message, so that a reopened stream
    continues where the broken one stopped (ExportFeedback's cursor). Without it the stream starts
    over, which suits StreamAggregates: it sends a fresh snapshot of totals.
    """
    current = type(request)()
    current.CopyFrom(request)
    attempt = 0
    since = time.monotonic()
    while True:
        try:
            async for message in _messages(open_call, current):
                attempt, since = 0, time.monotonic()  # the stream works again: a fresh retry budget
                if remember is not None:
                    remember(current, message)
                yield message
            return
        except FeedbackError as error:
            await asyncio.sleep(_reopen_delay(error, retry, attempt, since))
            attempt += 1


def remember_cursor(
    request: feedback_service_pb2.ExportFeedbackRequest, chunk: feedback_service_pb2.ExportFeedbackResponse
) -> None:
    if chunk.cursor:
        request.cursor = chunk.cursor
