"""Fixtures for tests of the store below the API: a migrated database of its own per module, reached through
each transport (the embedded engine, clickhouse-connect's HTTP client against the loopback HTTP fixture, and a
real ClickHouse server when FEEDBACK_TEST_CLICKHOUSE_URL is set)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from feedback_service.server import migrate
from feedback_service.store.engine import ClickHouseEngine, EngineConfig
from tests.support.clickhouse_http import ClickHouseHttpFixture

REAL_SERVER_URL = os.environ.get("FEEDBACK_TEST_CLICKHOUSE_URL")
BACKENDS = ["embedded", "http-fixture"] + (["server"] if REAL_SERVER_URL else [])


@pytest.fixture(scope="module")
def http_endpoint(engine_dir: Path) -> Iterator[ClickHouseHttpFixture]:
    """Test fixture standing in for a ClickHouse server: HTTP interface over the embedded engine."""
    with ClickHouseHttpFixture(str(engine_dir)) as endpoint:
        yield endpoint


@pytest.fixture(params=BACKENDS, scope="module")
async def engine(
    request: pytest.FixtureRequest, engine_dir: Path, http_endpoint: ClickHouseHttpFixture
) -> AsyncIterator[ClickHouseEngine]:
    urls = {"embedded": None, "http-fixture": http_endpoint.url, "server": REAL_SERVER_URL}
    database = f"store_tests_{uuid.uuid4().hex[:8]}"
    opened = ClickHouseEngine(EngineConfig(data_dir=engine_dir, url=urls[request.param], database=database))
    await migrate(opened)
    yield opened
    await opened.run(lambda client: client.command(f"DROP DATABASE IF EXISTS `{database}`"))
    await asyncio.to_thread(opened.close)
