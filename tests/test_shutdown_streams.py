"""SIGTERM with following streams open: they end at once with UNAVAILABLE ("server shutting down") on both
ports, and the server exits without waiting out its grace period (here far longer than the test waits)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx

from feedback_client import FeedbackClient, FeedbackError, thumbs_up
from feedback_proto.v1 import aggregates_pb2, feedback_service_pb2_grpc
from feedback_proto.v1 import feedback_service_pb2 as pb
from tests.support.auth import ADMIN_KEY
from tests.support.server_process import STOP_TIMEOUT_S, ServerProcess
from tests.test_http import envelope, envelopes

PROJECT = "shutdown"
SCOPE = aggregates_pb2.AggregateFilter(project=PROJECT)
WAIT_S = 60.0
# Ten times what the test waits for the exit: a server that drained its following streams for the whole
# grace would fail the test rather than slow it down.
GRACE_S = 10 * STOP_TIMEOUT_S
FEEDBACK = "/feedback.v1.FeedbackService"


async def _eventually(condition: Callable[[], bool], what: Callable[[], str]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, what()
        await asyncio.sleep(0.05)


class _HttpStream:
    """A server stream over the HTTP face, its frames as they arrive."""

    def __init__(self) -> None:
        self.body = b""
        self.done = False

    async def read(self, http: httpx.AsyncClient, method: str, content: bytes, content_type: str) -> None:
        headers = {"authorization": f"Bearer {ADMIN_KEY}", "content-type": content_type}
        async with http.stream("POST", f"{FEEDBACK}/{method}", content=envelope(content), headers=headers) as response:
            assert response.status_code == 200, await response.aread()
            async for chunk in response.aiter_bytes():
                self.body += chunk
        self.done = True

    def frames(self) -> list[tuple[int, bytes]]:
        frames, at = [], 0
        while at + 5 <= len(self.body):
            size = int.from_bytes(self.body[at + 1 : at + 5], "big")
            if at + 5 + size > len(self.body):
                break
            frames.append((self.body[at], self.body[at + 5 : at + 5 + size]))
            at += 5 + size
        return frames


async def test_sigterm_ends_following_streams_at_once_and_the_server_exits_before_its_grace(tmp_path: Path) -> None:
    env = {"FEEDBACK_SHUTDOWN_GRACE_S": str(GRACE_S)}
    async with ServerProcess(tmp_path / "data", env=env) as server:
        async with FeedbackClient(server.target, api_key=ADMIN_KEY, project=PROJECT) as client:
            await client.create(thumbs_up("t1", model="bot", model_version="v1"))

            # The SDK's follower of StreamAggregates: told of the break through on_reconnect.
            breaks: list[FeedbackError] = []
            received: list[pb.StreamAggregatesResponse] = []

            async def follow() -> None:
                request = pb.StreamAggregatesRequest(follow=True)
                async for message in client.stream_aggregates(request, on_reconnect=lambda e, _: breaks.append(e)):
                    received.append(message)

            # A plain gRPC following export: it sees the status itself.
            async with server.channel() as channel:
                stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
                export = stub.ExportFeedback(pb.ExportFeedbackRequest(filter=SCOPE, follow=True))
                exported: list[pb.ExportFeedbackResponse] = []
                export_error: list[grpc.aio.AioRpcError] = []

                async def read_export() -> None:
                    try:
                        async for chunk in export:
                            exported.append(chunk)
                    except grpc.aio.AioRpcError as error:
                        export_error.append(error)

                # Over the HTTP face: StreamAggregates on Connect (JSON), ExportFeedback on gRPC-Web.
                connect, grpc_web = _HttpStream(), _HttpStream()
                aggregates_json = json.dumps({"filter": {"project": PROJECT}, "follow": True}).encode()
                export_proto = pb.ExportFeedbackRequest(filter=SCOPE, follow=True).SerializeToString()
                async with httpx.AsyncClient(base_url=server.http_url, timeout=WAIT_S) as http:
                    tasks = [
                        asyncio.create_task(follow()),
                        asyncio.create_task(read_export()),
                        asyncio.create_task(
                            connect.read(http, "StreamAggregates", aggregates_json, "application/connect+json")
                        ),
                        asyncio.create_task(
                            grpc_web.read(http, "ExportFeedback", export_proto, "application/grpc-web+proto")
                        ),
                    ]
                    try:

                        def all_open() -> bool:
                            snapshot = any(m.WhichOneof("event") == "snapshot_complete" for m in received)
                            connect_snapshot = any(b"snapshotComplete" in data for _, data in connect.frames())
                            return snapshot and bool(exported) and connect_snapshot and bool(grpc_web.frames())

                        await _eventually(all_open, lambda: f"{received} {exported} {connect.body!r} {grpc_web.body!r}")
                        server.send_signal(signal.SIGTERM)
                        # Far less than the grace: wait_async fails after STOP_TIMEOUT_S.
                        assert await server.wait_async() == 0
                        await _eventually(
                            lambda: bool(breaks and export_error) and connect.done and grpc_web.done,
                            lambda: f"{breaks} {export_error} {connect.body!r} {grpc_web.body!r}",
                        )
                    finally:
                        for task in tasks:
                            task.cancel()
                        await asyncio.gather(*tasks, return_exceptions=True)

        assert (breaks[0].code, breaks[0].message) == (grpc.StatusCode.UNAVAILABLE, "server shutting down")
        assert (export_error[0].code(), export_error[0].details()) == (
            grpc.StatusCode.UNAVAILABLE,
            "server shutting down",
        )
        end_flags, end = envelopes(connect.body)[-1]
        assert end_flags == 0x02, "a Connect end-of-stream message"
        error: dict[str, Any] = json.loads(end)["error"]
        assert (error["code"], error["message"]) == ("unavailable", "server shutting down")
        trailer_flags, trailers = envelopes(grpc_web.body)[-1]
        assert trailer_flags == 0x80, "gRPC-Web trailers"
        assert b"grpc-status: 14\r\n" in trailers
        assert b"grpc-message: server%20shutting%20down" in trailers

        events = server.log_events()
        streams = [e for e in events if e.get("event") == "rpc" and e["code"] == "UNAVAILABLE"]
        assert sorted(e["transport"] for e in streams) == ["connect", "grpc", "grpc", "grpc-web"], streams
        assert {(e["reason"], e["level"]) for e in streams} == {("ShuttingDownError", "info")}, "not an error"
        stopped = [e["event"] for e in events if e.get("event") in ("shutting_down", "stopped")]
        assert stopped == ["shutting_down", "stopped"], events[-20:]
