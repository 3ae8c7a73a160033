"""Background batching: ``log()`` returns at once; a sender thread delivers with BatchCreateFeedback.

- Memory is bounded: at most ``max_buffer_items`` items are buffered or in flight. When the buffer
  is full, the ``full_buffer`` policy decides: ``"block"`` waits up to ``block_timeout_s`` for room
  (then drops), ``"drop"`` drops the new item at once. Every drop is counted in :class:`BatchStats`
  and logged as a warning.
- A batch goes out when ``max_batch_items`` items are waiting (and never holds more than about
  ``max_batch_bytes``); whatever is buffered goes out every ``flush_interval_s``, on ``flush()``, on
  ``close()`` and at interpreter exit.
- Every item gets its feedback id when it is logged, so a retry can never store it twice.
- Transient failures (UNAVAILABLE, RESOURCE_EXHAUSTED honouring RetryInfo, DEADLINE_EXCEEDED) are
  retried with backoff for as long as the client is open (or ``give_up_after_s``); on close they are
  retried until ``close_timeout_s``. Items the server refuses (e.g. INVALID_ARGUMENT) or that could
  not be delivered in time are counted as failed and passed to ``on_error``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from feedback_client.errors import FeedbackError
from feedback_client.loop_thread import LoopThread
from feedback_client.retry import IDEMPOTENT_RETRY_CODES, RetryPolicy
from feedback_proto.v1.feedback_pb2 import Feedback

MAX_BATCH_ITEMS = 1000  # the server's limit per BatchCreateFeedback call

_log = logging.getLogger("feedback_client.batching")


@dataclass(frozen=True, slots=True)
class BatchingOptions:
    """How ``log()`` buffers and sends; see the module docstring."""

    max_batch_items: int = MAX_BATCH_ITEMS
    max_batch_bytes: int = 4 * 1024 * 1024
    flush_interval_s: float = 1.0
    max_buffer_items: int = 100_000
    full_buffer: Literal["block", "drop"] = "block"
    block_timeout_s: float | None = 5.0
    give_up_after_s: float | None = None
    close_timeout_s: float = 30.0
    # Batches sent at once. More than 1 hides the round trip, but batches may then be stored out of
    # order: a user's quick vote toggle could end on the older vote (one vote per user keeps the last stored).
    max_in_flight: int = 1
    # Called on the sender thread for each item that will never be stored; it must not block.
    on_error: Callable[[Feedback, FeedbackError], None] | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch_items <= MAX_BATCH_ITEMS:
            raise ValueError(f"max_batch_items must be between 1 and {MAX_BATCH_ITEMS}, got {self.max_batch_items}")
        if self.max_buffer_items < self.max_batch_items:
            raise ValueError("max_buffer_items must be at least max_batch_items")
        if not 1 <= self.max_in_flight <= 16:
            raise ValueError(f"max_in_flight must be between 1 and 16, got {self.max_in_flight}")
        if self.flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be positive, got {self.flush_interval_s}")
        if self.full_buffer not in ("block", "drop"):
            raise ValueError(f"full_buffer must be 'block' or 'drop', got {self.full_buffer!r}")


@dataclass(frozen=True, slots=True)
class BatchStats:
    """Counters since the client opened. ``logged`` = ``sent`` + ``failed`` + still buffered or in flight."""

    logged: int
    sent: int
    failed: int
    dropped: int
    blocked: int
    retries: int
    batches: int
    pending: int


class BatchSender(Protocol):
    """One BatchCreateFeedback attempt: per-item results, or FeedbackError for the whole call."""

    async def send_batch_once(self, items: list[Feedback]) -> list[Feedback | FeedbackError]: ...

    async def close(self) -> None: ...


class BackgroundBatcher:
    """The buffer and the sender thread behind ``FeedbackClient.log``; started on first use."""

    def __init__(
        self,
        open_sender: Callable[[], Coroutine[Any, Any, BatchSender]],
        options: BatchingOptions,
        retry: RetryPolicy,
        default_project: str = "",
    ) -> None:
        self._open_sender = open_sender
        self._options = options
        self._retry = retry
        self._default_project = default_project
        self._condition = threading.Condition()
        self._start_lock = threading.Lock()
        self._buffer: deque[Feedback] = deque()
        self._in_flight = 0
        self._logged = self._sent = self._failed = self._dropped = self._blocked = 0
        self._retries = self._batches = 0
        self._closing = False
        self._drain_requested = False
        self._close_deadline = 0.0
        self._thread: LoopThread | None = None
        self._wake: asyncio.Event | None = None
        self._sender_done: asyncio.Future[None] | None = None

    # ---- any thread -------------------------------------------------------------------------

    def log(self, feedback: Feedback) -> str | None:
        """Buffer a copy of ``feedback``; returns its feedback id, or None when it was dropped."""
        item = Feedback()
        item.CopyFrom(feedback)
        if not item.feedback_id:
            item.feedback_id = str(uuid.uuid4())
        if not item.project:
            item.project = self._default_project
        with self._condition:
            if self._closing:
                raise RuntimeError("the client is closed; log() needs an open client")
            if not self._has_room() and not self._wait_for_room():
                self._dropped += 1
                _log.warning("feedback buffer full (%d items): dropped one item", self._options.max_buffer_items)
                return None
            self._buffer.append(item)
            self._logged += 1
            batch_ready = len(self._buffer) >= self._options.max_batch_items
        self._ensure_started()
        if batch_ready:
            self._wake_sender()
        return item.feedback_id

    def _has_room(self) -> bool:
        return len(self._buffer) + self._in_flight < self._options.max_buffer_items

    def _wait_for_room(self) -> bool:
        """Under the lock: apply the full-buffer policy; True when there is room now."""
        if self._options.full_buffer == "drop":
            return False
        if self._thread is not None and self._thread.is_current:
            return False  # waiting on the sender's own thread would never end
        self._blocked += 1
        return self._condition.wait_for(self._has_room, timeout=self._options.block_timeout_s)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Send everything logged so far; True when all of it was delivered or failed within the timeout."""
        with self._condition:
            target = self._logged
            if self._sent + self._failed >= target:
                return True
        with self._condition:
            self._drain_requested = True
        self._wake_sender()
        with self._condition:
            return self._condition.wait_for(lambda: self._sent + self._failed >= target, timeout=timeout_s)

    def stats(self) -> BatchStats:
        with self._condition:
            return BatchStats(
                logged=self._logged,
                sent=self._sent,
                failed=self._failed,
                dropped=self._dropped,
                blocked=self._blocked,
                retries=self._retries,
                batches=self._batches,
                pending=len(self._buffer) + self._in_flight,
            )

    def close(self) -> None:
        """Deliver what is buffered (retrying until ``close_timeout_s``), then stop the sender thread."""
        with self._condition:
            if self._closing:
                return
            self._closing = True
            self._close_deadline = time.monotonic() + self._options.close_timeout_s
            self._condition.notify_all()
        _live_batchers.discard(self)
        thread = self._thread
        if thread is None:
            return
        self._wake_sender()
        if thread.is_current:
            raise RuntimeError("close() called from the sender thread (inside on_error?)")
        # The sender gives up at the close deadline by itself; the extra second covers closing the channel.
        thread.run(self._wait_for_sender(), timeout_s=self._options.close_timeout_s + 5)
        thread.stop()

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return  # started: log() takes no extra lock
        with self._start_lock:
            if self._thread is None:
                thread = LoopThread("feedback-client-batcher")
                thread.run(self._start_sender())
                self._thread = thread
                _live_batchers.add(self)

    def _wake_sender(self) -> None:
        thread, wake = self._thread, self._wake
        if thread is not None and wake is not None:
            thread.call_soon(wake.set)

    # ---- the sender thread ------------------------------------------------------------------

    async def _start_sender(self) -> None:
        self._wake = asyncio.Event()
        sender = await self._open_sender()
        self._sender_done = asyncio.ensure_future(self._run(sender))

    async def _wait_for_sender(self) -> None:
        assert self._sender_done is not None
        await self._sender_done

    async def _run(self, sender: BatchSender) -> None:
        """Send full batches as they fill; everything at each interval, on flush() and on close."""
        assert self._wake is not None
        wake = self._wake
        loop = asyncio.get_running_loop()
        next_drain = loop.time() + self._options.flush_interval_s
        slots = asyncio.Semaphore(self._options.max_in_flight)
        deliveries: set[asyncio.Task[None]] = set()

        def delivered(task: asyncio.Task[None]) -> None:
            deliveries.discard(task)
            slots.release()
            wake.set()  # a slot is free: send what is waiting

        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, next_drain - loop.time()))
                self._wake.clear()
                with self._condition:
                    drain = self._drain_requested or self._closing or loop.time() >= next_drain
                    self._drain_requested = False
                if drain:
                    next_drain = loop.time() + self._options.flush_interval_s
                while True:
                    await slots.acquire()
                    batch = self._take_batch(full_only=not drain)
                    if not batch:
                        slots.release()
                        break
                    task = asyncio.ensure_future(self._deliver(sender, batch))
                    deliveries.add(task)
                    task.add_done_callback(delivered)
                with self._condition:
                    closed = self._closing and not self._buffer
                if closed:
                    await asyncio.gather(*deliveries)
                    return
        finally:
            await asyncio.gather(*deliveries, return_exceptions=True)
            await sender.close()

    def _take_batch(self, *, full_only: bool) -> list[Feedback]:
        """Up to max_batch_items (and about max_batch_bytes) from the head of the buffer.

        With ``full_only``, nothing unless a whole batch is waiting: partial batches wait for the interval.
        """
        batch: list[Feedback] = []
        size = 0
        with self._condition:
            if full_only and len(self._buffer) < self._options.max_batch_items:
                return batch
            while self._buffer and len(batch) < self._options.max_batch_items:
                item_size = self._buffer[0].ByteSize()
                if batch and size + item_size > self._options.max_batch_bytes:
                    break
                batch.append(self._buffer.popleft())
                size += item_size
            self._in_flight += len(batch)
        return batch

    def _may_retry(self, started: float) -> bool:
        with self._condition:
            if self._closing:
                return time.monotonic() < self._close_deadline
        give_up = self._options.give_up_after_s
        return give_up is None or time.monotonic() - started < give_up

    async def _deliver(self, sender: BatchSender, batch: list[Feedback]) -> None:
        """Send ``batch`` until every item is stored or failed for good. Items are idempotent by id."""
        pending = batch
        started = time.monotonic()
        attempt = 0
        while pending:
            try:
                results = await sender.send_batch_once(pending)
            except FeedbackError as error:
                results = [error] * len(pending)
            self._batches += 1
            retry: list[Feedback] = []
            retry_delay = 0.0
            for item, result in zip(pending, results, strict=True):
                if isinstance(result, Feedback):
                    self._finish(sent=1)
                elif result.code in IDEMPOTENT_RETRY_CODES and self._may_retry(started):
                    retry.append(item)
                    retry_delay = max(retry_delay, self._retry.backoff_s(attempt, result))
                else:
                    self._fail(item, result)
            pending = retry
            if pending:
                attempt += 1
                with self._condition:
                    self._retries += 1
                await asyncio.sleep(retry_delay)

    def _finish(self, *, sent: int = 0, failed: int = 0) -> None:
        with self._condition:
            self._sent += sent
            self._failed += failed
            self._in_flight -= sent + failed
            self._condition.notify_all()

    def _fail(self, item: Feedback, error: FeedbackError) -> None:
        self._finish(failed=1)
        _log.warning("feedback %s not stored: %s", item.feedback_id, error)
        if self._options.on_error is not None:
            try:
                self._options.on_error(item, error)
            except Exception:  # a broken callback must not stop delivery of the rest
                _log.exception("on_error callback failed")


_live_batchers: weakref.WeakSet[BackgroundBatcher] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """Deliver what open clients still buffer when the interpreter exits."""
    for batcher in list(_live_batchers):
        batcher.close()
