"""The one log line per RPC has the level of whose the outcome is: answers a client caused (an empty queue's
NOT_FOUND, bad input, a stream it closed) are info, refusals an operator may want to see (credentials,
scopes, rate limits) warnings, and only the server's own failures errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from structlog.testing import capture_logs

from feedback_proto.v1 import aggregates_pb2, annotation_pb2_grpc, api_keys_pb2_grpc, feedback_service_pb2_grpc
from feedback_proto.v1 import annotation_pb2 as annotation_pb
from feedback_proto.v1 import api_keys_pb2 as keys_pb
from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_service.api.calls import CallPolicy, Transport
from feedback_service.api.rate_limit import RateLimiter
from feedback_service.domain.errors import StoreUnavailableError
from tests.helpers import thumbs_up
from tests.support.auth import ADMIN_KEY, authorized_channel
from tests.support.server_process import ServerProcess
from tests.test_http import envelope

PROJECT = "levels"
SCOPE = aggregates_pb2.AggregateFilter(project=PROJECT)
ANNOTATION = "/feedback.v1.AnnotationService"
FEEDBACK = "/feedback.v1.FeedbackService"
BURST = 20  # per credential; the admin key spends less than this here


async def _refused(call: Any) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    raise AssertionError("the call succeeded")


async def test_expected_outcomes_are_logged_as_info_or_warning_never_as_errors(tmp_path: Path) -> None:
    env = {"FEEDBACK_RATE_LIMIT_PER_S": "0.001", "FEEDBACK_RATE_LIMIT_BURST": str(BURST)}
    async with ServerProcess(tmp_path / "data", env=env) as server:
        async with server.channel() as channel:
            feedback = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
            annotation = annotation_pb2_grpc.AnnotationServiceStub(channel)
            queue = annotation_pb.Queue(project=PROJECT, name="empty", keys=["correctness"])
            queue_id = (await annotation.CreateQueue(annotation_pb.CreateQueueRequest(queue=queue))).queue.queue_id
            claim = annotation_pb.ClaimNextItemRequest(project=PROJECT, queue_id=queue_id, reviewer="ann")
            assert await _refused(annotation.ClaimNextItem(claim)) == grpc.StatusCode.NOT_FOUND
            skip = annotation_pb.SkipItemRequest(project=PROJECT, queue_id=queue_id, claim_id="gone")
            assert await _refused(annotation.SkipItem(skip)) == grpc.StatusCode.FAILED_PRECONDITION
            missing = pb.GetFeedbackRequest(project=PROJECT, feedback_id="missing")
            assert await _refused(feedback.GetFeedback(missing)) == grpc.StatusCode.NOT_FOUND
            bad = pb.CreateFeedbackRequest(feedback=thumbs_up(PROJECT, trace_id=""))
            assert await _refused(feedback.CreateFeedback(bad)) == grpc.StatusCode.INVALID_ARGUMENT
            first = thumbs_up(PROJECT, feedback_id="fixed", trace_id="t-1")
            await feedback.CreateFeedback(pb.CreateFeedbackRequest(feedback=first))
            other = thumbs_up(PROJECT, feedback_id="fixed", trace_id="t-2")
            assert await _refused(feedback.CreateFeedback(pb.CreateFeedbackRequest(feedback=other))) == (
                grpc.StatusCode.ALREADY_EXISTS
            )
            # A follower that the client closes.
            follow = feedback.StreamAggregates(pb.StreamAggregatesRequest(filter=SCOPE, follow=True))
            async for message in follow:
                if message.WhichOneof("event") == "snapshot_complete":
                    break
            follow.cancel()

            keys = api_keys_pb2_grpc.ApiKeyServiceStub(channel)
            created = await keys.CreateApiKey(
                keys_pb.CreateApiKeyRequest(project=PROJECT, name="reader", scopes=[keys_pb.SCOPE_READ])
            )
        async with authorized_channel(server.target, "fbk_not_a_key") as stranger:
            get = feedback_service_pb2_grpc.FeedbackServiceStub(stranger).GetFeedback(missing)
            assert await _refused(get) == grpc.StatusCode.UNAUTHENTICATED
        async with authorized_channel(server.target, created.key) as reader:
            read = feedback_service_pb2_grpc.FeedbackServiceStub(reader)
            elsewhere = pb.GetFeedbackRequest(project="another", feedback_id="x")
            assert await _refused(read.GetFeedback(elsewhere)) == grpc.StatusCode.PERMISSION_DENIED
            codes = [await _refused(read.GetFeedback(missing)) for _ in range(BURST + 1)]
            assert codes[-1] == grpc.StatusCode.RESOURCE_EXHAUSTED, codes

        # The same over Connect: an empty queue, and a follower the client closes.
        headers = {"authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
            claimed = await http.post(
                f"{ANNOTATION}/ClaimNextItem",
                json={"project": PROJECT, "queueId": queue_id, "reviewer": "ann"},
                headers=headers,
            )
            assert claimed.status_code == 404
            body = envelope(json.dumps({"filter": {"project": PROJECT}, "follow": True}).encode())
            stream_headers = {**headers, "content-type": "application/connect+json"}
            async with http.stream("POST", f"{FEEDBACK}/StreamAggregates", content=body, headers=stream_headers) as s:
                async for chunk in s.aiter_bytes():
                    if b"snapshotComplete" in chunk:
                        break

        def lines() -> list[dict[str, Any]]:
            return [e for e in server.log_events() if e.get("event") == "rpc"]

        deadline = asyncio.get_running_loop().time() + 30
        while sum(e["code"] == "CANCELLED" for e in lines()) < 2:  # the server sees the closes a little later
            assert asyncio.get_running_loop().time() < deadline, lines()
            await asyncio.sleep(0.05)
        assert await server.terminate_async() == 0

    levels = {(e["method"].rsplit("/", 1)[1], e["code"], e["transport"]): e["level"] for e in lines()}
    assert levels[("ClaimNextItem", "NOT_FOUND", "grpc")] == "info", "an empty queue is an answer, not a failure"
    assert levels[("ClaimNextItem", "NOT_FOUND", "connect")] == "info"
    assert levels[("SkipItem", "FAILED_PRECONDITION", "grpc")] == "info"
    assert levels[("GetFeedback", "NOT_FOUND", "grpc")] == "info"
    assert levels[("CreateFeedback", "INVALID_ARGUMENT", "grpc")] == "info"
    assert levels[("CreateFeedback", "ALREADY_EXISTS", "grpc")] == "info"
    assert levels[("StreamAggregates", "CANCELLED", "grpc")] == "info", "the client closed its stream"
    assert levels[("StreamAggregates", "CANCELLED", "connect")] == "info"
    assert levels[("GetFeedback", "UNAUTHENTICATED", "grpc")] == "warning"
    assert levels[("GetFeedback", "PERMISSION_DENIED", "grpc")] == "warning"
    assert levels[("GetFeedback", "RESOURCE_EXHAUSTED", "grpc")] == "warning"
    errors = [e for e in server.log_events() if e.get("level") in ("error", "critical")]
    assert errors == [], "nothing here is the server's failure"


# The server's own failures are errors: the same call steps both transports run, without a transport.
_POLICY = CallPolicy(None, RateLimiter(rate=0, burst=0))


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (RuntimeError("a bug"), "INTERNAL"),
        (StoreUnavailableError("the database cannot be reached"), "UNAVAILABLE"),
    ],
)
def test_the_servers_own_failures_are_logged_as_errors(error: Exception, code: str) -> None:
    run = _POLICY.begin(f"{FEEDBACK}/GetFeedback", Transport.GRPC, [], pb.GetFeedbackRequest(project=PROJECT))
    with capture_logs() as logs:
        run.failed(error)
        run.finish()
    [line] = [entry for entry in logs if entry["event"] == "rpc"]
    assert (line["code"], line["log_level"]) == (code, "error")


def test_a_cancelled_call_is_info() -> None:
    run = _POLICY.begin(f"{FEEDBACK}/StreamAggregates", Transport.CONNECT, [])
    with capture_logs() as logs:
        run.ended_with(grpc.StatusCode.CANCELLED)
        run.finish()
    [line] = logs
    assert (line["code"], line["log_level"]) == ("CANCELLED", "info")
