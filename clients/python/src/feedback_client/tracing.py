"""Trace and span ids from OpenTelemetry, when it is installed (``pip install 'feedback-client[otel]'``).

Feedback judges one AI call; code that gives feedback while the call's span is current need not pass
its ids: they default to the current span's.
"""

from __future__ import annotations

from types import ModuleType

_otel_trace: ModuleType | None
try:
    from opentelemetry import trace as _otel_trace
except ImportError:  # the optional extra is not installed
    _otel_trace = None


def current_trace_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) of the current OpenTelemetry span as lower-case hex, or None."""
    if _otel_trace is None:
        return None
    context = _otel_trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return _otel_trace.format_trace_id(context.trace_id), _otel_trace.format_span_id(context.span_id)
