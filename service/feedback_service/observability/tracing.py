"""The tracing switch: OpenTelemetry is imported only when tracing is on.

``build_tracing`` returns None for ``off``: every tracing step in the interceptor, the engine and the
batcher is then skipped by one ``is None`` check, and no OpenTelemetry module is loaded. Otherwise it
returns a :class:`~feedback_service.observability.otel.Tracing`, which needs ``feedback-service[tracing]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from feedback_service.observability.otel import Tracing

__all__ = ["build_tracing", "current_trace_ids"]

# Set once any server of this process traces; until then log lines pay one None check.
_ids_of_current_span: Callable[[], tuple[str, str] | None] | None = None


def build_tracing(mode: str, *, provider: TracerProvider | None = None) -> Tracing | None:
    """Tracing for ``mode`` ("off", "otlp", "console"), or None when off.

    ``provider``: trace with this TracerProvider instead of building one for ``mode`` (which is then
    ignored); tests pass one with an in-memory exporter. The caller keeps owning it.
    """
    global _ids_of_current_span  # noqa: PLW0603  # the one process-wide switch, set on first use
    if mode == "off" and provider is None:
        return None
    try:
        from feedback_service.observability import otel  # noqa: PLC0415  # OpenTelemetry only when tracing is on
    except ImportError as error:
        from feedback_service.config_errors import ConfigError  # noqa: PLC0415

        raise ConfigError(
            f"FEEDBACK_TRACING={mode} needs the OpenTelemetry SDK: pip install 'feedback-service[tracing]' ({error})"
        ) from error
    tracing = otel.Tracing.build(mode, provider=provider)
    _ids_of_current_span = otel.current_ids
    return tracing


def current_trace_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) of the current span in hex, or None: tracing off or no span."""
    ids_of = _ids_of_current_span
    return None if ids_of is None else ids_of()
