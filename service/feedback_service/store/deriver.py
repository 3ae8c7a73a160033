"""Feeds the derived tables from the rows the writer stored, off the write path.

An insert into ``feedback`` used to feed four materialized views, and each view cost a part write on every
insert however few its rows. Now the writer inserts into ``feedback`` alone and answers its callers; the
deriver then inserts the same rows into ``feedback_changes`` (a Null table whose views fill the derived
tables), one insert for everything written since its last one. Under load, one derive covers many writes.

What readers rely on:
- ``wait_until_derived(seq)``: reads of derived tables (aggregates, exports) first wait for every write
  acknowledged before them, so a caller reads its own writes. A waiting reader makes the deriver go at
  once; otherwise it waits DERIVE_DELAY_S for more writes to share the derive.
- A derive that fails may have fed some views and not others: it is never retried as it was. The store
  repairs instead (the difference-based check of :mod:`derived_repair`, which covers every pending write),
  with its writer paused.
- Now and then a derive records a checkpoint: every revision of a flush begun before it is derived (the
  start-up check after a crash reads from there).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from clickhouse_connect.driver.client import Client

from feedback_service.store.derived_repair import SYNCHRONOUS_INSERT, write_checkpoint
from feedback_service.store.engine import ClickHouseEngine
from feedback_service.store.rows import RowBlock

CHANGES_TABLE = "feedback_changes"
# How often the deriver records a checkpoint (one tiny insert): it bounds the start-up check's work.
CHECKPOINT_INTERVAL_S = 60.0
# A reader waits at most this long for the deriver before its read fails as unavailable.
WAIT_LIMIT_S = 30.0
CLOSE_LIMIT_S = 10.0  # at a stop: what is not derived by then, the next start's check completes
# After a write, the deriver waits this long for more before it derives (unless a reader is waiting or
# much is pending): every derive costs a part write per view however few its rows, and the merges after.
DERIVE_DELAY_S = 0.2
DERIVE_NOW_ROWS = 10_000
# The views in parallel; no in-block merge (reads are correct before merges anyway); on a cluster, through
# the Distributed table to the shards before returning: readers are released when the insert returns.
_INSERT_SETTINGS = {"parallel_view_processing": 1, "optimize_on_insert": 0, **SYNCHRONOUS_INSERT}

_log = structlog.get_logger("feedback_service.store")

DeriveRows = Callable[[Client, RowBlock], None]


def insert_changes(client: Client, rows: RowBlock) -> None:
    """Into ``feedback_changes``: the very bytes the writer inserted into ``feedback`` (several flushes'
    blocks joined). Not serialised a second time: measured, that saved ~3 ms per 1,000 rows; reading the
    rows back instead (INSERT ... SELECT FROM feedback WHERE the ids just written) cost more than
    serialising them (~47 vs ~25-37 ms of CPU per 1,000 rows)."""
    rows.insert_into(client, CHANGES_TABLE, _INSERT_SETTINGS)


@dataclass(slots=True)
class _Written:
    """One flush's rows, waiting for the deriver."""

    seq: int
    rows: RowBlock
    projects: set[str]
    started: datetime  # when the writer began the flush: its rows were stamped no later (bar queueing)


class Deriver:
    def __init__(
        self,
        engine: ClickHouseEngine,
        *,
        on_failure: Callable[[], None],
        derive_rows: DeriveRows = insert_changes,
    ) -> None:
        self._engine = engine
        self._on_failure = on_failure
        self._derive_rows = derive_rows
        self._pending: deque[_Written] = deque()
        self.submitted_seq = 0
        self.derived_seq = 0
        self.failed = False  # a derive failed: the store must repair before anything else is derived
        self._wakeup = asyncio.Event()
        self._urgent = asyncio.Event()  # a reader waits, or the store closes: derive without delay
        self._pending_rows = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []  # (seq awaited, resolved once derived)
        self._task: asyncio.Task[None] | None = None
        self._checkpoint_due = time.monotonic() + CHECKPOINT_INTERVAL_S

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="deriver")

    def submit(self, rows: RowBlock, projects: set[str], started: datetime) -> int:
        """Queue a flush's stored rows; returns the sequence number that ``wait_until_derived`` takes."""
        self.submitted_seq += 1
        self._pending.append(_Written(self.submitted_seq, rows, projects, started))
        self._pending_rows += len(rows)
        if self._pending_rows >= DERIVE_NOW_ROWS:
            self._urgent.set()
        self._wakeup.set()
        return self.submitted_seq

    async def wait_until_derived(self, seq: int | None = None) -> None:
        """Until every write submitted so far (or up to ``seq``) is in the derived tables."""
        target = self.submitted_seq if seq is None else seq
        if self.derived_seq >= target:
            return
        self._urgent.set()
        if self._task is None or self._task.done():
            raise TimeoutError("the deriver is not running")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, done))
        try:
            await asyncio.wait_for(asyncio.shield(done), WAIT_LIMIT_S)
        finally:
            self._waiters = [(at, waiter) for at, waiter in self._waiters if waiter is not done]

    @property
    def pending(self) -> int:
        """Flushes written and not derived yet."""
        return len(self._pending)

    def take_pending(self) -> tuple[int, set[str]]:
        """For a repair that covers them: forget the pending writes; returns the last seq and their projects."""
        projects: set[str] = set()
        while self._pending:
            projects |= self._pending.popleft().projects
        self._pending_rows = 0
        return self.submitted_seq, projects

    async def mark_derived(self, seq: int) -> None:
        """After a repair: writes up to ``seq`` are derived."""
        self.failed = False
        await self._advance(seq)

    async def close(self) -> None:
        """Derive what is pending (within CLOSE_LIMIT_S), then stop."""
        if self._task is None:
            return
        if not self.failed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wait_until_derived(), CLOSE_LIMIT_S)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _advance(self, seq: int) -> None:
        self.derived_seq = max(self.derived_seq, seq)
        for at, waiter in self._waiters:
            if at <= self.derived_seq and not waiter.done():
                waiter.set_result(None)

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._urgent.wait(), DERIVE_DELAY_S)
            self._urgent.clear()
            while self._pending and not self.failed:
                batch = list(self._pending)
                await self._derive(batch)

    async def _derive(self, batch: list[_Written]) -> None:
        rows = RowBlock.join(written.rows for written in batch)
        last = batch[-1]
        checkpoint_due = time.monotonic() >= self._checkpoint_due
        # Everything before the first still-pending flush once this batch is in.
        following = self._pending[len(batch)] if len(self._pending) > len(batch) else None
        checkpoint = following.started if following is not None else last.started

        def derive(client: Client) -> None:
            self._derive_rows(client, rows)
            if checkpoint_due:
                write_checkpoint(client, checkpoint)

        try:
            await self._engine.run(derive)
        except Exception as error:
            self.failed = True
            _log.error("derive_failed", rows=len(rows), error=str(error)[:300])
            self._on_failure()
            return
        if checkpoint_due:
            self._checkpoint_due = time.monotonic() + CHECKPOINT_INTERVAL_S
        for _ in batch:
            self._pending_rows -= len(self._pending.popleft().rows)
        await self._advance(last.seq)
