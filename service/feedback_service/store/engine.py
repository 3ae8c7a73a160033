"""ClickHouse connections: the embedded engine (chdb) or a server by URL, behind one thread pool.

clickhouse-connect's chdb interface is synchronous (and its async client refuses
chdb), so every database call runs in a bounded pool of worker threads and the
event loop never blocks. Each worker has its own client: queries on one shared
client serialise.

With metrics, failed calls are counted by kind; with tracing, each call made within
an RPC gets a span, and the worker runs in the caller's context (span included).
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import clickhouse_connect
import structlog
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError, OperationalError

from feedback_service.domain.errors import DeadlineExceededError, StoreInUseError, StoreUnavailableError
from feedback_service.store import data_dir_lock
from feedback_service.store.deadline import call_deadline

if TYPE_CHECKING:
    from feedback_service.observability.metrics import ServerMetrics
    from feedback_service.observability.otel import Tracing

T = TypeVar("T")
_log = structlog.get_logger("feedback_service.store")

_ERROR_CODE = re.compile(r"Code: (\d+)\.")
_TIMEOUT_EXCEEDED = 159  # ClickHouse's error code for max_execution_time

_QUERY_STRING = re.compile(r"\?[^\s'\")]*")
_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Where the data lives: ``url`` for a server, else the embedded engine in ``data_dir``."""

    data_dir: Path
    url: str | None = None
    database: str = "feedback"
    threads: int = 4
    connect_timeout_s: float = 10.0
    query_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        # The database name is an identifier in DDL: allow-list it, never quote user text.
        if not _DATABASE_NAME.fullmatch(self.database):
            raise ValueError(f"database name {self.database!r} must match {_DATABASE_NAME.pattern}")

    @property
    def describe(self) -> str:
        """Where the data is, without credentials, for logs."""
        if self.url is None:
            return f"embedded:{self.data_dir.resolve()}"
        return re.sub(r"//[^@/]*@", "//", self.url)


class ClickHouseEngine:
    """Runs database calls off the event loop, translating connection failures."""

    def __init__(
        self, config: EngineConfig, *, metrics: ServerMetrics | None = None, tracing: Tracing | None = None
    ) -> None:
        self.config = config
        self._metrics = metrics
        self._tracing = tracing
        self._executor = ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="clickhouse")
        self._local = threading.local()
        self._clients: list[Client] = []
        self._clients_lock = threading.Lock()
        self._data_dir_lock = None if config.url else data_dir_lock.acquire(config.data_dir)
        self.available = True
        # Called (from a worker thread) when the database becomes unreachable or reachable again.
        self.on_availability: Callable[[bool], None] | None = None

    def connect(self, *, database: str | None) -> Client:
        """A new client; ``database=None`` for one that may create the database."""
        try:
            if self.config.url is None:
                return clickhouse_connect.get_client(
                    interface="chdb", path=str(self.config.data_dir), database=database
                )
            return clickhouse_connect.get_client(
                dsn=self.config.url,
                database=database or "default",
                connect_timeout=self.config.connect_timeout_s,
                send_receive_timeout=self.config.query_timeout_s,
                # Each worker thread has its own client; a shared session would serialise them.
                autogenerate_session_id=False,
            )
        except OperationalError as error:
            raise self._unavailable(error) from error
        except ClickHouseError as error:
            if "already initialized with path" in str(error):
                raise StoreInUseError(
                    f"this process already runs the embedded engine on another data dir; it cannot also open "
                    f"{self.config.data_dir}"
                ) from error
            raise

    def create_database(self) -> None:
        client = self.connect(database=None)
        try:
            client.command(f"CREATE DATABASE IF NOT EXISTS `{self.config.database}`")
        finally:
            client.close()

    async def run(self, work: Callable[[Client], T]) -> T:
        """Run ``work`` with this thread's client in the pool, within the calling RPC's deadline."""
        deadline = call_deadline.get()
        limit_s = 0
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceededError("the call's deadline passed before the database was asked")
            limit_s = max(1, math.ceil(remaining))  # ClickHouse counts whole seconds
        loop = asyncio.get_running_loop()
        if self._tracing is None:
            return await loop.run_in_executor(self._executor, self._call, work, limit_s)
        with self._tracing.db_call(self.config.database):
            # run_in_executor does not carry contextvars over (to_thread would): hand them to the worker.
            context = contextvars.copy_context()
            return await loop.run_in_executor(self._executor, context.run, self._call, work, limit_s)

    def _call(self, work: Callable[[Client], T], limit_s: int) -> T:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self.connect(database=self.config.database)
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        try:
            # With chdb a setting is a SET query on the handle: send it only when the limit changes.
            if getattr(self._local, "limit_s", None) != limit_s:
                client.set_client_setting("max_execution_time", limit_s)  # 0: no limit
                self._local.limit_s = limit_s
            result = work(client)
        except OperationalError as error:
            raise self._unavailable(error) from error
        except DatabaseError as error:
            if _error_code(error) == _TIMEOUT_EXCEEDED:
                self._count_error("timeout")
                raise DeadlineExceededError("the database query ran out of the call's deadline") from error
            self._count_error("other")
            raise
        except ClickHouseError:
            self._count_error("other")
            raise
        self._report(available=True)
        return result

    def _report(self, *, available: bool) -> None:
        if available != self.available:
            self.available = available
            if self.on_availability is not None:
                self.on_availability(available)

    def _unavailable(self, error: OperationalError) -> StoreUnavailableError:
        # Callers get a short, safe message; the cause (hosts, driver text) goes to the log.
        # The driver's message holds the request URL with its bound parameters: never log those.
        _log.warning("clickhouse_unavailable", storage=self.config.describe, error=_QUERY_STRING.sub("?…", str(error)))
        self._count_error("unavailable")
        self._report(available=False)
        return StoreUnavailableError("the feedback store is unavailable; retry with backoff")

    def _count_error(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.db_error(kind)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
        if self._data_dir_lock is not None:
            data_dir_lock.release(self._data_dir_lock)
            self._data_dir_lock = None


def _error_code(error: DatabaseError) -> int | None:
    """ClickHouse's numeric error code from a driver error (its text starts "Code: N.")."""
    match = _ERROR_CODE.search(str(error))
    return int(match[1]) if match else None
