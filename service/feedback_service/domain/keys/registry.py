"""Managing feedback key schemas, and the cache the write path reads them from."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from feedback_service.domain.errors import KeyExistsError, KeyNotFoundError
from feedback_service.domain.keys.schemas import KeySchema, apply_key_update, validate_schema
from feedback_service.domain.validation import ViolationCollector, check_key, check_project

# How long a replica may use a cached schema: a change made through another replica applies here
# within this time (changes made through this replica apply at once).
SCHEMA_CACHE_TTL_S = 5.0


class KeySchemaStore(Protocol):
    async def find(self, project: str, name: str) -> tuple[KeySchema, int] | None: ...

    async def list_project(self, project: str) -> list[KeySchema]: ...

    async def put(self, schema: KeySchema, revision: int) -> None: ...


class KeySchemaRegistry:
    """The schemas of a project, cached for SCHEMA_CACHE_TTL_S; what feedback writes are checked against."""

    def __init__(self, store: KeySchemaStore, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._clock = clock
        self._cache: dict[str, tuple[float, Mapping[str, KeySchema]]] = {}

    async def for_project(self, project: str) -> Mapping[str, KeySchema]:
        cached = self._cache.get(project)
        if cached is not None and self._clock() - cached[0] < SCHEMA_CACHE_TTL_S:
            return cached[1]
        schemas = {schema.name: schema for schema in await self._store.list_project(project)}
        self._cache[project] = (self._clock(), schemas)
        return schemas

    def forget(self, project: str) -> None:
        self._cache.pop(project, None)


class KeySchemaOperations:
    """Create, read, update and archive key schemas. Writes of one process are serialised."""

    def __init__(self, store: KeySchemaStore, registry: KeySchemaRegistry, *, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._registry = registry
        self._clock = clock
        self._write_lock = asyncio.Lock()

    async def create(self, schema: KeySchema) -> KeySchema:
        validate_schema(schema)
        async with self._write_lock:
            if await self._store.find(schema.project, schema.name) is not None:
                raise KeyExistsError(
                    f"feedback key {schema.name!r} already exists in project {schema.project!r} (archived keys too)"
                )
            now = self._clock()
            created = dataclasses.replace(schema, archived=False, create_time=now, update_time=now)
            await self._store.put(created, 1)
            self._registry.forget(schema.project)
            return created

    async def get(self, project: str, name: str) -> KeySchema:
        return (await self._find(project, name))[0]

    async def list(self, project: str, *, show_archived: bool) -> list[KeySchema]:
        found = ViolationCollector()
        check_project(project, found)
        found.raise_if_any()
        return [s for s in await self._store.list_project(project) if show_archived or not s.archived]

    async def update(self, change: KeySchema, mask: Sequence[str]) -> KeySchema:
        async with self._write_lock:
            current, revision = await self._find(change.project, change.name, prefix="feedback_key")
            updated = apply_key_update(current, change, mask, self._clock())
            await self._store.put(updated, revision + 1)
            self._registry.forget(change.project)
            return updated

    async def archive(self, project: str, name: str) -> KeySchema:
        async with self._write_lock:
            current, revision = await self._find(project, name)
            if current.archived:
                return current
            archived = dataclasses.replace(current, archived=True, update_time=self._clock())
            await self._store.put(archived, revision + 1)
            self._registry.forget(project)
            return archived

    async def _find(self, project: str, name: str, prefix: str = "") -> tuple[KeySchema, int]:
        found = ViolationCollector(prefix)
        check_project(project, found)
        check_key(name, found, name="name")
        found.raise_if_any()
        stored = await self._store.find(project, name)
        if stored is None:
            raise KeyNotFoundError(f"feedback key {name!r} not found in project {project!r}")
        return stored
