"""The deadline database calls run within: set per call by the transport, read by the engine."""

from __future__ import annotations

import contextvars

# Monotonic-clock deadline of the RPC running in this task, or None when it has none. Database calls
# made for the RPC get the time that remains (ClickHouse max_execution_time).
call_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("call_deadline", default=None)
