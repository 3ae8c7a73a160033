"""Metrics (Prometheus, on their own port) and tracing (OpenTelemetry, optional) of one server.

``metrics`` needs only prometheus-client; ``tracing`` loads ``otel`` (and with it OpenTelemetry) only
when tracing is on.
"""

from __future__ import annotations

from feedback_service.observability.metrics import MetricsEndpoint, ServerMetrics
from feedback_service.observability.tracing import build_tracing, current_trace_ids

__all__ = ["MetricsEndpoint", "ServerMetrics", "build_tracing", "current_trace_ids"]
