"""An asyncio event loop on a daemon thread, for code that is not itself async.

The sync client runs the async client on one; the background batcher sends from one, so ``log()``
works the same from threads, from async code and at interpreter exit (atexit handlers run while
daemon threads are still alive).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

Result = TypeVar("Result")


class LoopThread:
    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    @property
    def is_current(self) -> bool:
        """Whether the caller runs on this loop's thread (where blocking on the loop would deadlock)."""
        return threading.current_thread() is self._thread

    def submit(self, coroutine: Coroutine[Any, Any, Result]) -> concurrent.futures.Future[Result]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def run(self, coroutine: Coroutine[Any, Any, Result], timeout_s: float | None = None) -> Result:
        """Run ``coroutine`` on the loop and wait for its result."""
        if self.is_current:
            coroutine.close()
            raise RuntimeError("cannot wait for the loop thread from the loop thread itself")
        return self.submit(coroutine).result(timeout_s)

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Schedule ``callback`` on the loop from any thread."""
        self._loop.call_soon_threadsafe(callback)

    def stop(self) -> None:
        """Stop the loop and wait for the thread; the loop must have no work left that matters."""
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        if not self.is_current:
            self._thread.join()
            self._loop.close()
