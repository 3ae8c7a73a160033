"""Followers survive a server restart: the SDK's StreamAggregates with follow, and ``feedback tail``.

A server that shuts down ends its following streams at once with UNAVAILABLE ("server shutting down"),
without waiting out its grace period; a follower that has worked reconnects until the server is back
(here: the same port and data dir, restarted), says so, and then sees new feedback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from feedback_client import FeedbackClient, FeedbackError, RetryPolicy, thumbs_down, thumbs_up
from feedback_client.streams import resumable
from feedback_proto.v1 import feedback_service_pb2
from tests.support import cli
from tests.support.auth import ADMIN_KEY
from tests.support.ports import free_port
from tests.support.server_process import STOP_TIMEOUT_S, ServerProcess

PROJECT = "followers"
WAIT_S = 60.0


async def _eventually(condition: Callable[[], bool], what: Callable[[], str]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, what()
        await asyncio.sleep(0.05)


def _counts(messages: list[feedback_service_pb2.StreamAggregatesResponse]) -> list[int]:
    return [m.group.stats.count for m in messages if m.WhichOneof("event") == "group"]


def _snapshots(messages: list[feedback_service_pb2.StreamAggregatesResponse]) -> int:
    return sum(m.WhichOneof("event") == "snapshot_complete" for m in messages)


async def test_the_sdk_follower_and_tail_reconnect_when_the_server_restarts(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"

    def server() -> ServerProcess:  # the same port and data dir each time
        listen = ["--listen", f"127.0.0.1:{port}"]
        # A grace far longer than terminate waits: the open streams must not hold the shutdown.
        return ServerProcess(data_dir, extra_args=listen, env={"FEEDBACK_SHUTDOWN_GRACE_S": str(10 * STOP_TIMEOUT_S)})

    first = await server().start_async()
    second: ServerProcess | None = None
    target = first.target
    # The channels of this process share a connection in backoff after the restart: a writer retries longer.
    patient = RetryPolicy(max_attempts=None, max_elapsed_s=WAIT_S)
    try:
        async with FeedbackClient(target, api_key=ADMIN_KEY, project=PROJECT) as writer:
            await writer.create(thumbs_up("t1", model="bot", model_version="v1"))

        reconnections: list[FeedbackError] = []
        received: list[feedback_service_pb2.StreamAggregatesResponse] = []
        follower = FeedbackClient(target, api_key=ADMIN_KEY, project=PROJECT)

        async def follow() -> None:
            request = feedback_service_pb2.StreamAggregatesRequest(follow=True)
            async for message in follower.stream_aggregates(request, on_reconnect=lambda e, _: reconnections.append(e)):
                received.append(message)

        printed: list[dict[str, Any]] = []
        tail = await cli.start_cli(target, "tail", "--project", PROJECT, "--json", cwd=tmp_path)
        assert tail.stdout is not None
        stdout = tail.stdout

        async def read_tail() -> None:
            while line := await stdout.readline():
                printed.append(json.loads(line))

        tasks = [asyncio.create_task(follow()), asyncio.create_task(read_tail())]

        def snapshots() -> int:
            return sum("snapshot_complete" in line for line in printed)

        def tail_counts() -> list[int]:
            return [line["stats"]["count"] for line in printed if "stats" in line]

        try:
            await _eventually(lambda: snapshots() == 1 and _counts(received) == [1], lambda: f"{printed} {received}")
            assert await first.terminate_async() == 0
            second = await server().start_async()
            # Both reconnect by themselves: a new snapshot each, from the restarted server.
            await _eventually(lambda: _snapshots(received) == 2, lambda: f"SDK follower: {received}")
            await _eventually(lambda: snapshots() == 2, lambda: f"tail: {printed}")
            assert reconnections, "the SDK said it reconnected"
            assert (reconnections[0].code.name, reconnections[0].message) == ("UNAVAILABLE", "server shutting down")
            # Then they follow the restarted server's changes.
            async with FeedbackClient(target, api_key=ADMIN_KEY, project=PROJECT, retry=patient) as writer:
                await writer.create(thumbs_down("t2", model="bot", model_version="v1"))
            await _eventually(lambda: _counts(received)[-1] == 2, lambda: f"SDK follower: {received}")
            await _eventually(lambda: tail_counts()[-1] == 2, lambda: f"tail: {printed}")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await follower.close()
            tail.send_signal(signal.SIGINT)
            _, stderr = await asyncio.wait_for(tail.communicate(), WAIT_S)
        said = stderr.decode().splitlines()
        assert tail.returncode == 0, said
        assert said[0] == "feedback tail: the stream ended (UNAVAILABLE: server shutting down); reconnecting…", said
        assert said[1] == "feedback tail: reconnected; a new snapshot follows", said
    finally:
        first.kill()
        if second is not None:
            second.kill()


# ---- the reconnection rules, without a server --------------------------------------------------------


class _Call:
    """A stand-in for a grpc.aio server-streaming call: its messages, then an error (or the end)."""

    def __init__(self, messages: list[int], error: grpc.StatusCode | None) -> None:
        self._messages = messages
        self._error = error

    async def __aiter__(self) -> AsyncIterator[int]:
        for message in self._messages:
            yield message
        if self._error is not None:
            raise grpc.aio.AioRpcError(self._error, grpc.aio.Metadata(), grpc.aio.Metadata(), "server shutting down")

    def cancel(self) -> bool:
        return True


def _opener(calls: list[_Call]) -> Callable[[Any], _Call]:
    remaining = iter(calls)
    return lambda request: next(remaining)


_QUICK = RetryPolicy(max_attempts=2, initial_backoff_s=0.001, max_backoff_s=0.002, max_elapsed_s=5)
_REQUEST = feedback_service_pb2.StreamAggregatesRequest(follow=True)


async def test_a_follower_that_worked_reconnects_past_the_retry_limits_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    unavailable = grpc.StatusCode.UNAVAILABLE
    # A message, the server shuts the stream down, five failed attempts (more than max_attempts), then back.
    calls = [_Call([1], unavailable), *(_Call([], unavailable) for _ in range(5)), _Call([2], None)]
    with caplog.at_level(logging.DEBUG, logger="feedback_client.streams"):
        received = [m async for m in resumable(_opener(calls), _REQUEST, _QUICK, follow=True)]
    assert received == [1, 2]
    said = [(record.levelno, record.getMessage()) for record in caplog.records]
    assert said[0][0] == logging.WARNING, "the break is a warning"
    assert said[0][1].startswith("StreamAggregates ended with UNAVAILABLE (server shutting down); reconnecting in ")
    assert {level for level, _ in said[1:]} == {logging.DEBUG}, "the attempts after it are not"

    told: list[tuple[str, float]] = []
    calls = [_Call([1], unavailable), _Call([], unavailable), _Call([2], None)]

    def handler(error: FeedbackError, delay_s: float) -> None:
        told.append((error.code.name, delay_s))

    assert [m async for m in resumable(_opener(calls), _REQUEST, _QUICK, follow=True, on_reconnect=handler)] == [1, 2]
    assert [code for code, _ in told] == ["UNAVAILABLE", "UNAVAILABLE"], "each attempt is told to on_reconnect"


async def test_a_stream_that_never_worked_gives_up_after_the_retry_limits() -> None:
    calls = [_Call([], grpc.StatusCode.UNAVAILABLE) for _ in range(5)]
    with pytest.raises(FeedbackError) as failed:
        _ = [m async for m in resumable(_opener(calls), _REQUEST, _QUICK, follow=True, on_reconnect=lambda e, d: None)]
    assert failed.value.code == grpc.StatusCode.UNAVAILABLE
