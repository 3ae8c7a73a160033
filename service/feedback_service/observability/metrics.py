"""Prometheus metrics of one server: a registry of its own, served on its own port.

Each ``FeedbackServer`` has its own ``CollectorRegistry`` (never the process-wide default one), so
several servers in one process (tests) keep separate counts. Label children are created once and
cached: an RPC costs a dict lookup, a counter increment and a histogram observation.

This module knows nothing of gRPC: status codes arrive as enums and are labelled by name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import Enum
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

# Seconds: an RPC or a database call takes from a fraction of a millisecond (a cached read) to a
# minute (the query timeout). Streams count their whole life, so long ones land in +Inf.
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Rows per batched write: one lone create up to FEEDBACK_BATCH_MAX_ROWS (10,000 by default).
BATCH_ROWS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000)
DB_ERROR_KINDS = ("unavailable", "timeout", "other")

__all__ = ["DB_ERROR_KINDS", "MetricsEndpoint", "RpcMetrics", "ServerMetrics"]


class RpcMetrics:
    """The label children of one RPC method, created on its first call."""

    __slots__ = ("_by_code", "_duration", "_open_streams", "_rate_limited", "_rpcs", "_service", "_streams", "method")

    def __init__(self, metrics: ServerMetrics, method_path: str) -> None:
        # "/feedback.v1.FeedbackService/CreateFeedback" -> service, method
        service, _, method = method_path.lstrip("/").rpartition("/")
        self._service = service
        self.method = method
        self._rpcs = metrics.rpcs
        self._by_code: dict[Enum, Counter] = {}
        self._duration = metrics.rpc_duration.labels(service, method)
        self._rate_limited = metrics.rate_limited.labels(service, method)
        self._streams = metrics.open_streams
        self._open_streams: Gauge | None = None  # only streaming methods get this series

    def finished(self, code: Enum, duration_s: float) -> None:
        counter = self._by_code.get(code)
        if counter is None:  # once per method and status code
            counter = self._by_code[code] = self._rpcs.labels(self._service, self.method, code.name)
        counter.inc()
        self._duration.observe(duration_s)

    def rate_limited(self) -> None:
        self._rate_limited.inc()

    def stream_opened(self) -> None:
        if self._open_streams is None:
            self._open_streams = self._streams.labels(self._service, self.method)
        self._open_streams.inc()

    def stream_closed(self) -> None:
        if self._open_streams is not None:
            self._open_streams.dec()


class ServerMetrics:
    """Every metric of one server, in ``registry``."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        # The process_*, python_info and python_gc_* metrics the default registry would have.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.rpcs = Counter(
            "feedback_rpcs",
            "RPCs finished, by service, method and gRPC status code",
            ["service", "method", "code"],
            registry=registry,
        )
        self.rpc_duration = Histogram(
            "feedback_rpc_duration_seconds",
            "RPC latency as the server sees it (a stream: its whole life), by service and method",
            ["service", "method"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.open_streams = Gauge(
            "feedback_open_streams",
            "server-streaming RPCs open now (StreamAggregates, ExportFeedback), by service and method",
            ["service", "method"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "feedback_rate_limited",
            "calls refused by the per-credential rate limit (RESOURCE_EXHAUSTED), by service and method",
            ["service", "method"],
            registry=registry,
        )
        self.write_queue_rows = Gauge(
            "feedback_write_queue_rows",
            "feedback rows (creates, updates, deletes) waiting in the micro-batcher for their insert",
            registry=registry,
        )
        self.insert_rows = Histogram(
            "feedback_insert_batch_rows",
            "feedback rows per batched insert of the micro-batcher",
            buckets=BATCH_ROWS_BUCKETS,
            registry=registry,
        )
        self.insert_duration = Histogram(
            "feedback_insert_duration_seconds",
            "time of one batched insert, from the micro-batcher handing it over until it is stored (or failed)",
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.repaired_writes = Counter(
            "feedback_repaired_writes",
            "corrections written to a derived table because a crash or a failed insert left feedback rows without "
            "their derived rows (at start, or on the writer after a failed insert), by table",
            ["table"],
            registry=registry,
        )
        db_errors = Counter(
            "feedback_db_errors",
            "failed database calls, by kind: unavailable (connection), timeout (deadline), other",
            ["kind"],
            registry=registry,
        )
        self._db_errors = {kind: db_errors.labels(kind) for kind in DB_ERROR_KINDS}
        self._methods: dict[str, RpcMetrics] = {}

    def rpc(self, method_path: str) -> RpcMetrics:
        """The metrics of one method, by its gRPC path (``/package.Service/Method``)."""
        found = self._methods.get(method_path)
        if found is None:
            found = self._methods[method_path] = RpcMetrics(self, method_path)
        return found

    def db_error(self, kind: str) -> None:
        """Count a failed database call; ``kind`` is one of DB_ERROR_KINDS."""
        self._db_errors[kind].inc()

    def repaired(self, corrections_by_table: dict[str, int]) -> None:
        for table, count in corrections_by_table.items():
            self.repaired_writes.labels(table).inc(count)

    def inserted(self, rows: int, duration_s: float) -> None:
        self.insert_rows.observe(rows)
        self.insert_duration.observe(duration_s)

    def watch_write_queue(self, queued_rows: Callable[[], float]) -> None:
        """Read the write queue's depth at scrape time: nothing to update on the write path."""
        self.write_queue_rows.set_function(queued_rows)


class MetricsEndpoint:
    """prometheus_client's HTTP server for one registry, in a daemon thread; ``/metrics`` serves it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @classmethod
    def start(cls, address: str, registry: CollectorRegistry) -> MetricsEndpoint:
        """Listen on ``host:port`` (port 0 picks a free one; ``[::]:9090`` for IPv6)."""
        host, _, port = address.rpartition(":")
        try:
            server, thread = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
        except OSError as error:
            raise OSError(f"cannot serve metrics on {address}: {error}") from error
        return cls(server, thread)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def stop(self) -> None:
        """Stop serving and close the socket (blocks up to half a second: the server's poll interval)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
