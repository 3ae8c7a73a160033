"""Micro-batcher: coalesces concurrent writes into one database call.

Each caller submits its items and waits; one worker takes everything queued
(up to ``max_rows``), hands it to ``flush`` in a single call, and answers every
caller with its own slice of the results, only after ``flush`` returned, i.e.
after the rows are stored. While one flush runs the next batch accumulates, so
batches grow with load without a timer; ``max_delay_s`` adds a short wait for
company when the worker is idle. A single worker also makes each flush see
the outcome of the previous one, which idempotency checks rely on.

``instrument`` adds metrics (queue depth, rows and time per flush) and tracing (each
write remembers its caller's span; a flush's database span belongs to those callers).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from feedback_service.domain.errors import QueueFullError, StoreUnavailableError

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext

    from feedback_service.observability.metrics import ServerMetrics
    from feedback_service.observability.otel import Tracing

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(slots=True)
class _Request(Generic[Item, Result]):
    items: Sequence[Item]
    answer: asyncio.Future[list[Result]]
    enqueued_at: float
    caller_span: SpanContext | None = None  # only with tracing


class MicroBatcher(Generic[Item, Result]):
    def __init__(
        self,
        flush: Callable[[list[Item]], Awaitable[list[Result]]],
        *,
        max_rows: int = 10_000,
        max_delay_s: float = 0.002,
        max_queued_rows: int = 200_000,
    ) -> None:
        self._flush = flush
        self._max_rows = max_rows
        self._max_delay_s = max_delay_s
        self._max_queued_rows = max_queued_rows
        self._pending: deque[_Request[Item, Result]] = deque()
        self._queued_rows = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._worker: asyncio.Task[None] | None = None
        self.flushes = 0  # number of flush calls, for tests
        self._metrics: ServerMetrics | None = None
        self._tracing: Tracing | None = None

    def instrument(self, *, metrics: ServerMetrics | None, tracing: Tracing | None) -> None:
        """Report to ``metrics`` and trace with ``tracing`` (None: not at all)."""
        self._metrics = metrics
        self._tracing = tracing
        if metrics is not None:
            metrics.watch_write_queue(lambda: self.queued_rows)

    @property
    def queued_rows(self) -> int:
        """Rows waiting for a flush (not those of the flush running now)."""
        return self._queued_rows

    def start(self) -> None:
        self._worker = asyncio.create_task(self._run(), name="micro-batcher")

    async def submit(self, items: Sequence[Item]) -> list[Result]:
        """Queue ``items`` and wait until they are flushed; one result per item, in order."""
        if self._closing or self._worker is None:
            raise StoreUnavailableError("the server is shutting down; retry against another instance")
        if self._queued_rows and self._queued_rows + len(items) > self._max_queued_rows:
            raise QueueFullError(
                f"the write queue is full ({self._queued_rows} rows waiting); retry after a short backoff"
            )
        request: _Request[Item, Result] = _Request(items, asyncio.get_running_loop().create_future(), time.monotonic())
        if self._tracing is not None:
            request.caller_span = self._tracing.capture()
        self._pending.append(request)
        self._queued_rows += len(items)
        self._wakeup.set()
        # A caller that gives up cancels only its answer: its rows stay queued and are written.
        return await request.answer

    async def close(self) -> None:
        """Flush everything queued, then stop the worker."""
        self._closing = True
        self._wakeup.set()
        if self._worker is not None:
            await self._worker

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                # Decide on state, not on the event: a wake-up set while busy is never lost.
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._linger()
            await self._flush_batch(self._take_batch())

    async def _linger(self) -> None:
        """Wait briefly for more rows unless the batch is already full."""
        deadline = self._pending[0].enqueued_at + self._max_delay_s
        while self._queued_rows < self._max_rows and not self._closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _take_batch(self) -> list[_Request[Item, Result]]:
        batch = [self._pending.popleft()]
        rows = len(batch[0].items)
        while self._pending and rows + len(self._pending[0].items) <= self._max_rows:
            request = self._pending.popleft()
            rows += len(request.items)
            batch.append(request)
        self._queued_rows -= rows
        return batch

    async def _flush_batch(self, batch: list[_Request[Item, Result]]) -> None:
        items = [item for request in batch for item in request.items]
        self.flushes += 1
        started = time.perf_counter()
        try:
            if self._tracing is None:
                results = await self._flush(items)
            else:
                with self._tracing.write_batch([request.caller_span for request in batch], rows=len(items)):
                    results = await self._flush(items)
        except Exception as error:  # every waiting caller learns why its write failed
            for request in batch:
                if not request.answer.done():
                    request.answer.set_exception(error)
            return
        finally:
            if self._metrics is not None:
                self._metrics.inserted(len(items), time.perf_counter() - started)
        start = 0
        for request in batch:
            end = start + len(request.items)
            if not request.answer.done():
                request.answer.set_result(results[start:end])
            start = end
