"""Shared fixtures: one real server per test session, on the embedded engine, over real gRPC.

One process can hold one embedded engine path, so the session has a single
engine dir; tests isolate themselves by project (or by database). Tests that
need their own engine (restart, SIGTERM) run the server as a subprocess.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from hypothesis import settings as hypothesis_settings

from feedback_client import FeedbackClient
from feedback_proto.v1 import feedback_service_pb2_grpc
from feedback_service.config import Settings
from feedback_service.logging_setup import configure_logging
from feedback_service.server import FeedbackServer
from tests.support.auth import ADMIN_KEY, ALLOWED_ORIGIN, OLD_TOKEN_SECRET, TOKEN_SECRET, authorized_channel

# The store's per-transport database fixtures (engine, http_endpoint), for every test module.
pytest_plugins = ["tests.support.store_fixtures"]

# CI replays the same generated examples every run (a red CI is then always reproducible); local runs
# draw new ones each time, so the fuzzers keep exploring.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@pytest.fixture(scope="session")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one embedded ClickHouse data dir of this test process."""
    return tmp_path_factory.mktemp("engine")


@pytest.fixture(scope="session")
async def server(engine_dir: Path) -> AsyncIterator[FeedbackServer]:
    configure_logging(log_format="json", level="warning")
    settings = Settings(
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",  # the HTTP face too, on a free port: see the http_url fixture
        cors_origins=(ALLOWED_ORIGIN,),
        data_dir=engine_dir,
        clickhouse_database="api_tests",
        admin_key=ADMIN_KEY,
        token_secrets=(TOKEN_SECRET, OLD_TOKEN_SECRET),
    )
    running = FeedbackServer(settings)
    await running.start()
    yield running
    await running.stop(grace_s=1)


@pytest.fixture(scope="session")
def http_url(server: FeedbackServer) -> str:
    """The base URL of the session server's HTTP face (Connect, gRPC-Web, /healthz, /readyz)."""
    assert server.http_port is not None
    return f"http://127.0.0.1:{server.http_port}"


@pytest.fixture(scope="session")
async def channel(server: FeedbackServer) -> AsyncIterator[grpc.aio.Channel]:
    # The bootstrap admin key: every scope on every project; test_auth covers project keys.
    async with authorized_channel(f"127.0.0.1:{server.port}", ADMIN_KEY) as open_channel:
        yield open_channel


@pytest.fixture(scope="session")
def stub(channel: grpc.aio.Channel) -> feedback_service_pb2_grpc.FeedbackServiceAsyncStub:
    # The generated stub is typed as sync or async; on an aio channel it is the async one.
    return feedback_service_pb2_grpc.FeedbackServiceStub(channel)  # type: ignore[return-value]


@pytest.fixture(scope="session")
async def client(server: FeedbackServer) -> AsyncIterator[FeedbackClient]:
    async with FeedbackClient(f"127.0.0.1:{server.port}", api_key=ADMIN_KEY) as open_client:
        yield open_client


@pytest.fixture
def project() -> str:
    """A project of its own for each test, so tests never see each other's feedback."""
    return f"test-{uuid.uuid4().hex[:12]}"
