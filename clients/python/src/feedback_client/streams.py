"""Server streams that survive disconnects: StreamAggregates reopens, ExportFeedback resumes at its cursor."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
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
ReconnectHandler = Callable[[FeedbackError, float], None]
"""Called before each attempt to reopen a broken stream: the error that ended the stream (or the last
attempt), and the seconds until the next attempt."""

_log = logging.getLogger(__name__)


def _log_reconnect(name: str, error: FeedbackError, delay_s: float, attempt: int) -> None:
    """Without a ReconnectHandler: a warning when a stream breaks, the attempts after it at debug level."""
    level = logging.WARNING if attempt == 0 else logging.DEBUG
    _log.log(level, "%s ended with %s (%s); reconnecting in %.1f s", name, error.code.name, error.message, delay_s)


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


def follower_policy(retry: RetryPolicy) -> RetryPolicy:
    """How a following stream that has worked reconnects: ``retry``'s backoff, without its attempt or time
    limits. A follower runs until it is cancelled; a server restart or a rolling deploy may take minutes."""
    return dataclasses.replace(retry, max_attempts=None, max_elapsed_s=None)


async def resumable(
    open_call: OpenCall,
    request: Message,
    retry: RetryPolicy | None,
    remember: Callable[[Message, Any], None] | None = None,
    *,
    follow: bool = False,
    on_reconnect: ReconnectHandler | None = None,
) -> AsyncIterator[Any]:
    """A server stream, reopened after transient failures while ``retry`` allows.

    ``remember(request, message)`` updates the request after each message, so that a reopened stream
    continues where the broken one stopped (ExportFeedback's cursor). Without it the stream starts
    over, which suits StreamAggregates: it sends a fresh snapshot of totals.

    With ``follow`` (a stream that stays open for changes), once the stream has delivered a message it is
    reopened for as long as the caller reads it (:func:`follower_policy`): a server that shuts down ends its
    streams with UNAVAILABLE, and the follower reconnects when the server (or another replica) is back.
    Before the first message, ``retry`` decides, so a wrong target still fails. Every attempt to reopen is
    said through ``on_reconnect``; without it, the break is a warning on the ``feedback_client.streams``
    logger.
    """
    current = type(request)()
    current.CopyFrom(request)
    attempt = 0
    since = time.monotonic()
    worked = False
    name = type(request).__name__.removesuffix("Request")
    while True:
        try:
            async for message in _messages(open_call, current):
                attempt, since = 0, time.monotonic()  # the stream works again: a fresh retry budget
                worked = True
                if remember is not None:
                    remember(current, message)
                yield message
            return
        except FeedbackError as error:
            policy = follower_policy(retry) if retry is not None and follow and worked else retry
            delay = _reopen_delay(error, policy, attempt, since)
            if on_reconnect is not None:
                on_reconnect(error, delay)
            else:
                _log_reconnect(name, error, delay, attempt)
            await asyncio.sleep(delay)
            attempt += 1


def remember_cursor(
    request: feedback_service_pb2.ExportFeedbackRequest, chunk: feedback_service_pb2.ExportFeedbackResponse
) -> None:
    if chunk.cursor:
        request.cursor = chunk.cursor
