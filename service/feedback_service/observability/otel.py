"""OpenTelemetry tracing of RPCs and database calls. Imported only when tracing is on.

- One SERVER span per RPC, named ``feedback.v1.FeedbackService/CreateFeedback``, child of the caller's
  span when the call carries W3C ``traceparent`` metadata (any propagator set by OTEL_PROPAGATORS).
- One CLIENT span per database call made within an RPC: ``clickhouse query`` for reads,
  ``clickhouse insert`` for a batched write of the micro-batcher. A batch serves many RPCs at once:
  its span is a child of the first RPC's span and links to the others. Database calls outside any
  RPC (the storage probe, migrations) make no spans.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from enum import Enum
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from feedback_service import __version__
from feedback_service.config_errors import ConfigError

__all__ = ["Tracing", "current_ids"]

DEFAULT_SERVICE_NAME = "feedback-service"
# Status codes that mean the server failed (OpenTelemetry's RPC conventions for server spans);
# the others (INVALID_ARGUMENT, NOT_FOUND, ...) are the caller's and leave the span's status unset.
_SERVER_ERRORS = frozenset({"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"})
_MAX_LINKS = 128  # the SDK's default span link limit


@dataclass(frozen=True, slots=True)
class _WriteBatch:
    rows: int
    links: tuple[Link, ...]


# Set by the micro-batcher's worker around a flush: the database call it makes is that batch's insert.
_write_batch: ContextVar[_WriteBatch | None] = ContextVar("write_batch", default=None)


class Tracing:
    """Spans for one server, from ``provider``'s tracer."""

    def __init__(self, provider: trace.TracerProvider, *, owned: TracerProvider | None = None) -> None:
        self._tracer = provider.get_tracer("feedback_service", __version__)
        self._owned = owned  # shut down with the server; a provider passed in stays its owner's
        self._propagated = frozenset(propagate.get_global_textmap().fields)

    @classmethod
    def build(cls, mode: str, *, provider: trace.TracerProvider | None = None) -> Tracing:
        if provider is not None:
            return cls(provider)
        owned = TracerProvider(resource=_resource())
        owned.add_span_processor(_processor(mode))
        return cls(owned, owned=owned)

    def shutdown(self) -> None:
        """Export what is buffered, then stop (blocks: the OTLP exporter may wait for its collector)."""
        if self._owned is not None:
            self._owned.shutdown()

    def start_rpc(
        self, method_path: str, metadata: Sequence[tuple[str, Any]] | None, request: Any, *, system: str = "grpc"
    ) -> Span:
        """Start the RPC's span and make it current for the rest of the call. ``request`` None: not decoded
        yet (Connect starts the call before reading the body; see describe_request). ``system``: ``grpc``
        (gRPC and gRPC-Web) or ``connect_rpc``."""
        name = method_path.lstrip("/")
        service, _, method = name.rpartition("/")
        # Only the propagation fields: the authorization header stays where it is.
        carrier = {key: value for key, value in metadata or () if key in self._propagated and isinstance(value, str)}
        attributes: dict[str, AttributeValue] = {"rpc.system": system, "rpc.service": service, "rpc.method": method}
        project = _project_of(request)
        if project:
            attributes["feedback.project"] = project
        span = self._tracer.start_span(
            name, context=propagate.extract(carrier), kind=SpanKind.SERVER, attributes=attributes
        )
        # Never detached: each RPC runs in a task of its own, whose context ends with it (like call_deadline).
        otel_context.attach(trace.set_span_in_context(span))
        return span

    def describe_request(self, span: Span, request: Any) -> None:
        """What start_rpc takes from a request, once it is decoded."""
        project = _project_of(request)
        if project:
            span.set_attribute("feedback.project", project)

    def end_rpc(self, span: Span, code: Enum) -> None:
        number, name = code.value  # grpc.StatusCode: (number, "name")
        span.set_attribute("rpc.grpc.status_code", number)
        if code.name in _SERVER_ERRORS:
            span.set_status(Status(StatusCode.ERROR, name))
        span.end()

    def capture(self) -> SpanContext | None:
        """The current span's context, kept with a write waiting in the micro-batcher."""
        context = trace.get_current_span().get_span_context()
        return context if context.is_valid else None

    @contextlib.contextmanager
    def write_batch(self, captured: Sequence[SpanContext | None], *, rows: int) -> Iterator[None]:
        """Around one flush of the micro-batcher: its insert's span belongs to the RPCs it serves."""
        contexts = [context for context in captured if context is not None]
        if not contexts:
            yield
            return
        links = tuple(Link(context) for context in contexts[1 : _MAX_LINKS + 1])
        batch_token = _write_batch.set(_WriteBatch(rows, links))
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(contexts[0])))
        try:
            yield
        finally:
            otel_context.detach(token)
            _write_batch.reset(batch_token)

    @contextlib.contextmanager
    def db_call(self, database: str) -> Iterator[None]:
        """A span around one database call made within an RPC."""
        if not trace.get_current_span().get_span_context().is_valid:
            yield  # the storage probe, migrations: not worth a trace of their own
            return
        batch = _write_batch.get()
        operation = "query" if batch is None else "insert"
        attributes: dict[str, AttributeValue] = {
            "db.system": "clickhouse",
            "db.namespace": database,
            "db.operation.name": operation,
        }
        links: Sequence[Link] = ()
        if batch is not None:
            attributes["db.operation.batch.size"] = batch.rows
            links = batch.links
        with self._tracer.start_as_current_span(
            f"clickhouse {operation}", kind=SpanKind.CLIENT, attributes=attributes, links=links
        ):
            yield


def current_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) of the current span, in the hex form trace back ends show, or None."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def _project_of(request: Any) -> str:
    """The request's project when it names one: ``project``, ``feedback.project`` (a create) or
    ``filter.project`` (aggregates, exports); a batch may span projects and gets none."""
    for holder in (request, getattr(request, "feedback", None), getattr(request, "filter", None)):
        project = getattr(holder, "project", None)
        if isinstance(project, str) and project:
            return project
    return ""


def _resource() -> Resource:
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES apply; without a service name: feedback-service."""
    resource = Resource.create({SERVICE_VERSION: __version__})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


def _processor(mode: str) -> SpanProcessor:
    if mode == "console":  # for a look by eye: each span as it ends, on stdout
        return SimpleSpanProcessor(ConsoleSpanExporter())
    if mode == "otlp":
        return BatchSpanProcessor(_otlp_exporter())
    raise ConfigError(f"FEEDBACK_TRACING: unknown mode {mode!r}")


def _otlp_exporter() -> SpanExporter:
    """OTLP over gRPC to OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4317)."""
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415  # only for otlp
            OTLPSpanExporter,
        )
    except ImportError as error:
        raise ConfigError(
            "FEEDBACK_TRACING=otlp needs opentelemetry-exporter-otlp-proto-grpc: "
            f"pip install 'feedback-service[tracing]' ({error})"
        ) from error
    return OTLPSpanExporter()
