"""One call of any RPC, whatever its transport: the steps every call goes through, and what servicers get.

A transport (``grpc_transport`` for gRPC, ``connect_transport`` for Connect and gRPC-Web) starts a
:class:`CallRun` per call with the request's metadata, then:

1. ``admit``: refuses undecodable and oversized requests, sets the call deadline for the layers below,
   authenticates the credential, refuses API keys and console links sent by pages of another origin,
   checks the RPC's scopes (a console link: the RPCs it allows) and charges the rate limit; it returns
   the :class:`CallContext` the servicer gets (which resolves project, reviewer and queue against the
   credential);
2. for a server stream, ``stream``: the servicer's responses, ended with UNAVAILABLE ("server shutting
   down") as soon as the server stops when the stream follows changes (it would never end by itself);
3. ``failed``: turns whatever the servicer (or a step above) raised into the ``google.rpc.Status`` the
   caller gets, logging and tracing an unexpected error as INTERNAL;
4. ``finish``: the call's one log line, then its metrics and the end of its span. The line's level says
   whose the outcome is: info for answers a client caused and can act on (NOT_FOUND of an empty queue,
   INVALID_ARGUMENT, a stream the client closed, the server's own shutdown), warning for refusals an
   operator may want to see (credentials, scopes, rate limits, deadlines), error only for the server's
   failures (INTERNAL and other unexpected codes, UNAVAILABLE of the database).

The transport only puts the request and the status on its wire. Servicers take a :class:`CallContext`
and never see either transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
import structlog

from feedback_service.api.auth import authorize, bearer_of
from feedback_service.api.errors import INTERNAL_STATUS, grpc_code, status_proto
from feedback_service.domain.access.auth import UNAUTHENTICATED_LOCAL, Principal
from feedback_service.domain.errors import (
    FeedbackServiceError,
    FieldViolation,
    InvalidArgumentError,
    PermissionDeniedError,
    RateLimitedError,
    ShuttingDownError,
    StoreUnavailableError,
)
from feedback_service.store.deadline import call_deadline

if TYPE_CHECKING:
    from google.rpc import status_pb2
    from opentelemetry.trace import Span

    from feedback_client.tokens import TokenClaims
    from feedback_service.api.rate_limit import RateLimiter
    from feedback_service.domain.access.api_keys import Authenticator
    from feedback_service.observability.metrics import ServerMetrics
    from feedback_service.observability.otel import Tracing

__all__ = [
    "MAX_REQUEST_BYTES",
    "CallContext",
    "CallPolicy",
    "CallRun",
    "Metadata",
    "Transport",
    "Undecodable",
]

_log = structlog.get_logger("feedback_service.rpc")

# Request metadata as both transports have it: gRPC metadata, or HTTP headers with lower-case names.
Metadata = Sequence[tuple[str, Any]]

# The level of a call's log line by its code (see the module docstring); codes not named here are info.
_LEVELS = {
    grpc.StatusCode.PERMISSION_DENIED: logging.WARNING,
    grpc.StatusCode.UNAUTHENTICATED: logging.WARNING,
    grpc.StatusCode.RESOURCE_EXHAUSTED: logging.WARNING,
    grpc.StatusCode.DEADLINE_EXCEEDED: logging.WARNING,
    grpc.StatusCode.UNAVAILABLE: logging.ERROR,  # the database (or a transport failure); a shutdown is info
    grpc.StatusCode.INTERNAL: logging.ERROR,
    grpc.StatusCode.UNKNOWN: logging.ERROR,
    grpc.StatusCode.DATA_LOSS: logging.ERROR,
    grpc.StatusCode.UNIMPLEMENTED: logging.ERROR,
}

# Our own bound on a decoded request, below the transports' (64 MiB on either port, which answers
# RESOURCE_EXHAUSTED), so that a large request gets a field violation that says what to do.
MAX_REQUEST_BYTES = 32 * 1024 * 1024


class Transport(enum.Enum):
    """The wire a call came over; in its log line as ``transport``."""

    GRPC = "grpc"
    CONNECT = "connect"
    GRPC_WEB = "grpc-web"


class Undecodable:
    """Stands in for a request whose bytes are not a valid message (bad wire format, bad JSON, bad UTF-8).

    Transports decode leniently and hand this over, so that every transport answers INVALID_ARGUMENT
    with the same field violation (gRPC itself would answer UNKNOWN).
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _check_decoded(request: Any) -> None:
    if isinstance(request, Undecodable):
        raise InvalidArgumentError([FieldViolation("request", f"is not a valid message: {request.reason}")])
    size = request.ByteSize()
    if size > MAX_REQUEST_BYTES:
        raise InvalidArgumentError(
            [FieldViolation("request", f"is {size} bytes, more than {MAX_REQUEST_BYTES}: split the batch")]
        )


@dataclass(frozen=True, slots=True)
class CallContext:
    """What a servicer knows of the call it serves, whatever the transport."""

    method: str  # "/feedback.v1.FeedbackService/CreateFeedback"
    principal: Principal
    transport: Transport

    def project(self, requested: str) -> str:
        """The project the call acts on: the credential's, checked against the one the request names
        (empty: the credential's). The one way servicers resolve a project."""
        return self.principal.project_for(requested)

    def reviewer(self, requested: str, *, field: str = "reviewer") -> str:
        """The reviewer the call acts as: a console link's own reviewer (a request naming another one is
        PERMISSION_DENIED naming ``field``), else the request's. The one way servicers resolve a reviewer."""
        return self.principal.reviewer_for(requested, field=field)

    def queue(self, requested: str, *, field: str = "queue_id") -> str:
        """The queue the call acts on: a console link bound to a queue allows that queue only (empty takes
        it), else the request's. The one way servicers resolve a queue id."""
        return self.principal.queue_for(requested, field=field)

    @property
    def bound_reviewer(self) -> str | None:
        """The reviewer the credential is bound to (a console link), or None."""
        return self.principal.bound_reviewer

    @property
    def bound_queue(self) -> str | None:
        """The queue the credential is bound to (a console link for one queue), or None."""
        return self.principal.bound_queue

    @property
    def actor(self) -> str:
        """The key id recorded as the writer (``created_by``, ``updated_by``)."""
        return self.principal.key_id

    @property
    def token(self) -> TokenClaims | None:
        """The end-user feedback token the call came with, if any."""
        return self.principal.token


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """What every call of one server shares, whatever its transport."""

    authenticator: Authenticator | None  # None: --insecure-no-auth
    limiter: RateLimiter
    metrics: ServerMetrics | None = None  # None: no metrics endpoint
    tracing: Tracing | None = None  # None: tracing off
    # Set when the server stops: following streams end at once (see CallRun.stream).
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def shut_down(self) -> None:
        """End every following stream now with UNAVAILABLE ("server shutting down"), and refuse new ones."""
        self.stopping.set()

    def begin(
        self, method: str, transport: Transport, metadata: Metadata, request: Any = None, *, peer: str = ""
    ) -> CallRun:
        """Start timing (and tracing) one call; ``request`` when it is already decoded, ``peer`` the
        caller's address as the transport sees it."""
        return CallRun(self, method, transport, metadata, request, peer=peer)


def _project_named_in(request: Any) -> str:
    """The project a request names, for the log line: its own field, its filter's (streams and exports), or
    its (first) feedback's."""
    project = getattr(request, "project", "")
    if not project:
        project = getattr(getattr(request, "filter", None), "project", "")
    if not project:
        feedback = getattr(request, "feedback", None)
        first = feedback[0] if isinstance(feedback, Sequence) and feedback else feedback
        project = getattr(first, "project", "")
    return project if isinstance(project, str) else ""


def _follows(request: Any) -> bool:
    """Whether a server stream's request asks it to follow changes (``follow``), so that it never ends."""
    return getattr(request, "follow", False) is True


def _rate_key(principal: Principal) -> str:
    # Token holders are end users: each gets a budget of their own, not one shared by the token secret.
    token, link = principal.token, principal.console
    if link is not None:  # a person with a console link: one budget per reviewer of a project
        return f"link:{link.project}:{link.reviewer}"
    return principal.key_id if token is None else f"token:{token.project}:{token.user}"


def _cost(method: str, request: Any) -> int:
    """Batches spend one unit per item, so a limit bounds events, not calls."""
    if method.endswith("/BatchCreateFeedback"):
        return max(1, len(request.feedback))
    return 1


class CallRun:
    """One call, from its start to its log line: see the module docstring for the steps."""

    __slots__ = (
        "_authenticator",
        "_described",
        "_level",
        "_limiter",
        "_metadata",
        "_metrics",
        "_span",
        "_stopping",
        "_streaming",
        "_tracing",
        "code",
        "key_id",
        "method",
        "peer",
        "project",
        "refusal",
        "started",
        "transport",
    )

    def __init__(
        self, policy: CallPolicy, method: str, transport: Transport, metadata: Metadata, request: Any, *, peer: str = ""
    ) -> None:
        self.method = method
        self.peer = peer
        # For the log line: the project the call is about, and for a refusal its reason and the names of
        # the bad fields (never their values).
        self.project = ""
        self.refusal: dict[str, Any] = {}
        self.transport = transport
        self.started = time.perf_counter()
        self.code = grpc.StatusCode.OK
        self.key_id = ""
        self._metadata = metadata
        self._authenticator = policy.authenticator
        self._limiter = policy.limiter
        self._stopping = policy.stopping
        self._level = logging.INFO
        self._metrics = None if policy.metrics is None else policy.metrics.rpc(method)
        self._tracing = policy.tracing
        self._span: Span | None = None
        self._described = request is not None
        if self._tracing is not None:
            system = "connect_rpc" if transport is Transport.CONNECT else "grpc"
            self._span = self._tracing.start_rpc(method, metadata, request, system=system)
        self._streaming = False

    async def admit(self, request: Any, *, deadline: float | None, cross_origin: bool = False) -> CallContext:
        """Refuse undecodable requests, then authenticate and authorize the caller.

        ``deadline``: the call's, on the monotonic clock (None: none). ``cross_origin``: the call comes
        from a browser page of another origin (its ``Origin`` is not the service's own), where an API
        key has no business: keys are backend secrets, pages carry end-user feedback tokens. Nor has a
        console link: the console is served by the service itself (same origin), so a link arriving from
        another origin's page has leaked.
        """
        call_deadline.set(deadline)
        self.project = _project_named_in(request)
        _check_decoded(request)
        if not self._described and self._span is not None and self._tracing is not None:
            self._tracing.describe_request(self._span, request)
        if self._authenticator is None:  # --insecure-no-auth
            return CallContext(self.method, UNAUTHENTICATED_LOCAL, self.transport)
        principal = await self._authenticator.authenticate(bearer_of(self._metadata, request))
        self.key_id = principal.key_id
        self.project = self.project or (principal.project or "")
        if cross_origin and principal.console is not None:
            raise PermissionDeniedError(
                "console links work on the service's own pages only and are refused from pages of other origins"
            )
        if cross_origin and principal.token is None:
            raise PermissionDeniedError(
                "API keys are backend secrets and are refused from pages of other origins: "
                "send an end-user feedback token (see MintFeedbackToken)"
            )
        authorize(principal, self.method)
        try:
            self._limiter.charge(_rate_key(principal), _cost(self.method, request))
        except RateLimitedError:
            if self._metrics is not None:
                self._metrics.rate_limited()
            raise
        return CallContext(self.method, principal, self.transport)

    def failed(self, error: BaseException) -> status_pb2.Status:
        """The status the caller gets for ``error``, recorded as the call's code. Domain errors map to
        their code (api/errors.py); anything else is a bug: logged, traced, and INTERNAL to the caller."""
        if isinstance(error, FeedbackServiceError):
            self.code = grpc_code(error)
            self._level = _LEVELS.get(self.code, logging.INFO)
            if isinstance(error, ShuttingDownError):  # the server's own stop: nothing went wrong
                self._level = logging.INFO
            elif isinstance(error, StoreUnavailableError):
                self._level = logging.ERROR
            self.refusal = {"reason": type(error).__name__}
            fields = sorted({violation.field for violation in getattr(error, "violations", ())})
            if fields:
                self.refusal["bad_fields"] = fields
            return status_proto(error)
        self.code = grpc.StatusCode.INTERNAL
        self._level = logging.ERROR
        _log.exception("rpc_failed", method=self.method, exc_info=error)
        if self._span is not None:
            self._span.record_exception(error)
        return INTERNAL_STATUS

    def ended_with(self, code: grpc.StatusCode) -> None:
        """A code the transport decided: the client went away, the deadline passed, the body was too big."""
        self.code = code
        self._level = _LEVELS.get(code, logging.INFO)

    async def stream(self, request: Any, responses: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """The servicer's ``responses`` to an admitted ``request``; they are closed when the call ends.

        A stream that follows changes never ends by itself, so it would hold the server's shutdown for its
        whole grace period: when the server stops it ends at once with ShuttingDownError (UNAVAILABLE,
        "server shutting down"), which followers take as their cue to reconnect. Other streams end by
        themselves and are drained like unary calls.
        """
        if self._metrics is not None:
            self._metrics.stream_opened()
            self._streaming = True
        try:
            if not _follows(request):
                async for response in responses:
                    yield response
                return
            async with contextlib.aclosing(_until_set(self._stopping, responses)) as following:
                async for response in following:
                    yield response
        finally:
            if isinstance(responses, AsyncGenerator):
                await responses.aclose()

    def finish(self) -> None:
        """The call's one log line (with trace ids when tracing), then its metrics and the end of its span."""
        duration_s = time.perf_counter() - self.started
        _log.log(
            self._level,
            "rpc",
            method=self.method,
            code=self.code.name,
            duration_ms=round(duration_s * 1000, 3),
            key_id=self.key_id,
            transport=self.transport.value,
            project=self.project,
            peer=self.peer,
            **self.refusal,
        )
        if self._metrics is not None:
            if self._streaming:
                self._metrics.stream_closed()
            self._metrics.finished(self.code, duration_s)
        if self._span is not None and self._tracing is not None:
            self._tracing.end_rpc(self._span, self.code)


async def _until_set(stopping: asyncio.Event, responses: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
    """``responses`` until ``stopping`` is set, then ShuttingDownError, even while waiting for the next one."""
    if stopping.is_set():
        raise ShuttingDownError
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        while True:
            # Each step in a task of its own, so that the stop can interrupt a step waiting for changes;
            # the task inherits the call's context (its deadline, its span).
            step = asyncio.ensure_future(_next(responses))
            try:
                await asyncio.wait((step, stopped), return_when=asyncio.FIRST_COMPLETED)
            finally:
                interrupted = not step.done()  # the stop came first (or the call itself was cancelled)
                if interrupted:
                    step.cancel()
                    await asyncio.wait((step,))
            if interrupted:
                raise ShuttingDownError
            response, more = step.result()
            if not more:
                return
            yield response
    finally:
        stopped.cancel()


async def _next(responses: AsyncIterator[Any]) -> tuple[Any, bool]:
    """The next response and True, or (None, False) at the end (StopAsyncIteration cannot cross a task)."""
    try:
        return await anext(responses), True
    except StopAsyncIteration:
        return None, False
