"""In-process notification of writes, so following streams refresh at once instead of at the next poll."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class ChangeFeed:
    """Writers publish the projects they changed; each subscriber holds one flag, so memory stays bounded."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Event]] = {}

    def publish(self, projects: set[str]) -> None:
        for project in projects:
            for flag in self._subscribers.get(project, ()):
                flag.set()

    @contextmanager
    def subscribe(self, project: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``project`` changes; the subscriber clears it when it has caught up."""
        flag = asyncio.Event()
        self._subscribers.setdefault(project, set()).add(flag)
        try:
            yield flag
        finally:
            flags = self._subscribers[project]
            flags.discard(flag)
            if not flags:
                del self._subscribers[project]

    def subscriber_count(self) -> int:
        return sum(len(flags) for flags in self._subscribers.values())
