"""The micro-batcher on its own: coalescing, bounds, failure and shutdown."""

from __future__ import annotations

import asyncio

import pytest

from feedback_service.domain.errors import QueueFullError, StoreUnavailableError
from feedback_service.store.batcher import MicroBatcher


class RecordingSink:
    """A flush target that records each call and can be held or made to fail."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.error: Exception | None = None

    async def flush(self, items: list[int]) -> list[int]:
        await self.gate.wait()
        self.calls.append(items)
        if self.error is not None:
            raise self.error
        return [item * 10 for item in items]


async def test_each_caller_gets_its_own_results_in_order() -> None:
    sink = RecordingSink()
    batcher = MicroBatcher(sink.flush, max_rows=1000, max_delay_s=0.01)
    batcher.start()
    results = await asyncio.gather(*(batcher.submit([i, i + 1000]) for i in range(50)))
    await batcher.close()
    assert results == [[i * 10, (i + 1000) * 10] for i in range(50)]
    assert len(sink.calls) < 50


async def test_a_batch_never_exceeds_max_rows() -> None:
    sink = RecordingSink()
    batcher = MicroBatcher(sink.flush, max_rows=10, max_delay_s=0.01)
    batcher.start()
    await asyncio.gather(*(batcher.submit([i, i, i]) for i in range(20)))
    await batcher.close()
    assert max(len(call) for call in sink.calls) <= 10
    assert sum(len(call) for call in sink.calls) == 60


async def test_a_full_queue_refuses_new_writes_without_queueing_them() -> None:
    sink = RecordingSink()
    sink.gate.clear()  # hold the first flush so the queue fills up behind it
    batcher = MicroBatcher(sink.flush, max_rows=5, max_delay_s=0, max_queued_rows=5)
    batcher.start()
    first = asyncio.create_task(batcher.submit([1, 2, 3, 4, 5]))
    await asyncio.sleep(0.01)  # the worker takes it and blocks in flush
    second = asyncio.create_task(batcher.submit([6, 7, 8, 9, 10]))
    await asyncio.sleep(0)
    with pytest.raises(QueueFullError):
        await batcher.submit([11])
    sink.gate.set()
    assert await first == [10, 20, 30, 40, 50]
    assert await second == [60, 70, 80, 90, 100]
    await batcher.close()
    assert [item for call in sink.calls for item in call] == list(range(1, 11))


async def test_a_failed_flush_fails_every_caller_in_it_and_the_worker_goes_on() -> None:
    sink = RecordingSink()
    batcher = MicroBatcher(sink.flush, max_rows=100, max_delay_s=0.01)
    batcher.start()
    sink.error = StoreUnavailableError("down")
    outcomes = await asyncio.gather(batcher.submit([1]), batcher.submit([2]), return_exceptions=True)
    assert all(isinstance(o, StoreUnavailableError) for o in outcomes)
    sink.error = None
    assert await batcher.submit([3]) == [30]
    await batcher.close()


async def test_close_flushes_what_is_queued_and_then_refuses() -> None:
    sink = RecordingSink()
    batcher = MicroBatcher(sink.flush, max_rows=100, max_delay_s=10)  # would linger long
    batcher.start()
    pending = asyncio.create_task(batcher.submit([7]))
    await asyncio.sleep(0.01)
    await batcher.close()
    assert await pending == [70]
    with pytest.raises(StoreUnavailableError, match="shutting down"):
        await batcher.submit([8])


async def test_a_cancelled_caller_still_has_its_rows_written() -> None:
    sink = RecordingSink()
    sink.gate.clear()
    batcher = MicroBatcher(sink.flush, max_rows=100, max_delay_s=0.05)
    batcher.start()
    waiting = asyncio.create_task(batcher.submit([4]))
    await asyncio.sleep(0)
    waiting.cancel()
    sink.gate.set()
    await batcher.close()
    assert sink.calls == [[4]]
