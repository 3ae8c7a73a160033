"""A client process of bench/ingest_bench.py: drives one server with one kind of load, prints one JSON line.

    BENCH_API_KEY=... python bench/ingest_client.py --target HOST:PORT --mode single|batch|sdk \
        --project P --start-at EPOCH --seconds S [--concurrency N] [--channels N] \
        [--transport grpc|connect-proto|connect-json]

It starts sending at once (everything before ``--start-at`` is warm-up) and counts what completes
inside the window [start-at, start-at + seconds] of wall-clock time, so several client processes
measure the same window. The key travels in the environment, never on the command line.

- ``single``: ``--concurrency`` callers (default 64) over ``--channels`` grpc.aio channels, each
  calling CreateFeedback with one new item at a time; calls/s and latency of the calls started in
  the window.
- ``batch``: ``--concurrency`` (default 4) BatchCreateFeedback calls of 1,000 new items in flight;
  events/s. Each sender reuses its request message and gives every item a new feedback id and trace
  id before each send (the values are a fixed draw of the mix), so the client spends its CPU on
  sending rather than on building messages.
- ``sdk``: ``FeedbackClient.log`` with the default BatchingOptions from one producer as fast as it
  goes (``log`` blocks when the buffer is full); events/s = items the SDK reports delivered inside the
  window; then ``flush``. The SDK sets the feedback ids.

``--transport`` (single and batch): ``grpc`` (default) over grpc.aio; ``connect-proto`` and
``connect-json`` send the same requests to the HTTP face (``--target`` is then its base URL,
``http://HOST:PORT``) as Connect unary calls (``application/proto`` or ``application/json``), with
pyqwest, the Rust HTTP/1.1 client connectrpc itself uses (one connection per concurrent call). JSON
batches are built once as dicts whose ids change before each send, then ``json.dumps``-ed, as a
browser would ``JSON.stringify`` its objects; every answer is decoded as gRPC's are.

Output: ``{"events": ..., "seconds": ..., "calls": ..., "errors": ..., "cpu_s": ..., "latencies_ms":
[...] (single only), "late_s": ...}``; ``cpu_s`` is this process's CPU inside the window.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format
from ingest_workload import Identities, drafts, message

from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_proto.v1 import feedback_service_pb2_grpc

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # as the server allows
BATCH_ITEMS = 1000
CALL_TIMEOUT_S = 60.0


@dataclass
class Window:
    """The measured window in wall-clock seconds, and what fell into it."""

    start: float
    end: float
    events: int = 0
    calls: int = 0
    errors: int = 0
    latencies_s: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    first_send: float = 0.0

    def inside(self, moment: float) -> bool:
        return self.start <= moment <= self.end


async def _sample_cpu(window: Window) -> None:
    """This process's CPU over the window (all threads: grpc's and the SDK's sender too)."""
    await asyncio.sleep(max(0.0, window.start - time.time()))
    before = time.process_time()
    await asyncio.sleep(max(0.0, window.end - time.time()))
    window.cpu_s = time.process_time() - before


def _channels(target: str, count: int) -> list[grpc.aio.Channel]:
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # Separate channels get separate connections (by default grpc shares one per target).
        ("grpc.use_local_subchannel_pool", 1),
    ]
    return [grpc.aio.insecure_channel(target, options=options) for _ in range(count)]


def _stub(channel: grpc.aio.Channel) -> Any:
    return feedback_service_pb2_grpc.FeedbackServiceStub(channel)


class ConnectCaller:
    """CreateFeedback and BatchCreateFeedback as Connect unary calls on the HTTP face (see the docstring)."""

    def __init__(self, base_url: str, key: str, *, json_codec: bool) -> None:
        import pyqwest  # noqa: PLC0415  (only the Connect transports need it; connectrpc brings it)

        self._client = pyqwest.Client(pyqwest.HTTPTransport(enable_gzip=False, enable_brotli=False, enable_zstd=False))
        self._json = json_codec
        self._url = base_url.rstrip("/") + "/feedback.v1.FeedbackService/"
        content_type = "application/json" if json_codec else "application/proto"
        self._headers = {"content-type": content_type, "authorization": f"Bearer {key}"}

    async def _post(self, method: str, body: bytes) -> bytes | None:
        try:
            response = await asyncio.wait_for(
                self._client.post(self._url + method, self._headers, body), timeout=CALL_TIMEOUT_S
            )
        except (OSError, TimeoutError):
            return None
        return response.content if response.status == 200 else None

    async def create(self, request: pb.CreateFeedbackRequest) -> bool:
        as_json = self._json
        body = json_format.MessageToJson(request, indent=None).encode() if as_json else request.SerializeToString()
        answer = await self._post("CreateFeedback", body)
        if answer is None:
            return False
        if self._json:
            json.loads(answer)
        else:
            pb.CreateFeedbackResponse.FromString(answer)
        return True

    async def batch(self, request: pb.BatchCreateFeedbackRequest, as_json: dict[str, Any]) -> int:
        """Items stored; ``as_json`` is ``request`` as a dict, with the same ids."""
        body = json.dumps(as_json).encode() if self._json else request.SerializeToString()
        answer = await self._post("BatchCreateFeedback", body)
        if answer is None:
            return 0
        if self._json:
            return sum(1 for result in json.loads(answer).get("results", ()) if "feedback" in result)
        response = pb.BatchCreateFeedbackResponse.FromString(answer)
        return sum(1 for result in response.results if result.HasField("feedback"))


async def run_single(args: argparse.Namespace, key: str, window: Window) -> None:
    metadata = (("authorization", f"Bearer {key}"),)
    connect = (
        None
        if args.transport == "grpc"
        else ConnectCaller(args.target, key, json_codec=args.transport == "connect-json")
    )
    channels = _channels(args.target, args.channels) if connect is None else []
    stubs = [_stub(channel) for channel in channels] or [None]
    mix = drafts(seed=os.getpid())
    identities = Identities()

    async def caller(stub: Any) -> None:
        while (began_wall := time.time()) < window.end:
            feedback_id, trace_id = identities.take()
            request = pb.CreateFeedbackRequest(
                feedback=message(next(mix), project=args.project, feedback_id=feedback_id, trace_id=trace_id)
            )
            began = time.perf_counter()
            if connect is not None:
                ok = await connect.create(request)
            else:
                try:
                    await stub.CreateFeedback(request, timeout=CALL_TIMEOUT_S, metadata=metadata)
                    ok = True
                except grpc.aio.AioRpcError:
                    ok = False
            latency = time.perf_counter() - began
            if window.inside(time.time()):
                window.calls += 1
                window.events += ok
                window.errors += not ok
            if window.inside(began_wall):
                window.latencies_s.append(latency)

    for channel in channels:
        await channel.channel_ready()
    window.first_send = time.time()
    sampler = asyncio.create_task(_sample_cpu(window))
    await asyncio.gather(*(caller(stubs[i % len(stubs)]) for i in range(args.concurrency)))
    await sampler
    for channel in channels:
        await channel.close()


async def run_batch(args: argparse.Namespace, key: str, window: Window) -> None:
    metadata = (("authorization", f"Bearer {key}"),)
    connect = (
        None
        if args.transport == "grpc"
        else ConnectCaller(args.target, key, json_codec=args.transport == "connect-json")
    )
    channels = _channels(args.target, args.channels) if connect is None else []
    stubs = [_stub(channel) for channel in channels] or [None]
    mix = drafts(seed=os.getpid())
    identities = Identities()

    def new_request() -> pb.BatchCreateFeedbackRequest:
        items = [
            message(draft, project=args.project, feedback_id="", trace_id="")
            for draft in itertools.islice(mix, BATCH_ITEMS)
        ]
        return pb.BatchCreateFeedbackRequest(feedback=items)

    async def sender(stub: Any, request: pb.BatchCreateFeedbackRequest) -> None:
        as_json = json_format.MessageToDict(request) if args.transport == "connect-json" else {}
        while time.time() < window.end:
            for number, item in enumerate(request.feedback):  # new identities; the previous send is done
                item.feedback_id, item.trace_id = identities.take()
                if as_json:
                    as_json["feedback"][number].update(feedbackId=item.feedback_id, traceId=item.trace_id)
            if connect is not None:
                stored = await connect.batch(request, as_json)
            else:
                try:
                    response = await stub.BatchCreateFeedback(request, timeout=CALL_TIMEOUT_S, metadata=metadata)
                    stored = sum(1 for result in response.results if result.HasField("feedback"))
                except grpc.aio.AioRpcError:
                    stored = 0
            failed = len(request.feedback) - stored
            if window.inside(time.time()):
                window.calls += 1
                window.events += stored
                window.errors += failed

    requests = [new_request() for _ in range(args.concurrency)]  # one per sender: never mutated in flight
    for channel in channels:
        await channel.channel_ready()
    window.first_send = time.time()
    sampler = asyncio.create_task(_sample_cpu(window))
    await asyncio.gather(*(sender(stubs[i % len(stubs)], request) for i, request in enumerate(requests)))
    await sampler
    for channel in channels:
        await channel.close()


async def run_sdk(args: argparse.Namespace, key: str, window: Window) -> dict[str, Any]:
    from feedback_client import FeedbackClient  # noqa: PLC0415  (only this mode needs the SDK)

    mix = drafts(seed=os.getpid())
    templates = [
        message(draft, project=args.project, feedback_id="", trace_id="") for draft in itertools.islice(mix, 1000)
    ]
    identities = Identities()
    async with FeedbackClient(args.target, api_key=key, project=args.project) as client:
        window.first_send = time.time()
        sent_at_start = -1
        cpu_at_start = 0.0
        for count in itertools.count():
            item = templates[count % len(templates)]
            item.trace_id = identities.take()[1]  # log() copies the item and gives it its feedback id
            client.log(item)
            if count % 200 == 0:
                now = time.time()
                if sent_at_start < 0 and now >= window.start:
                    sent_at_start, cpu_at_start = client.batch_stats().sent, time.process_time()
                if now >= window.end:
                    break
        sent_at_end, window.cpu_s = client.batch_stats().sent, time.process_time() - cpu_at_start
        window.events = sent_at_end - sent_at_start
        flush_began = time.perf_counter()
        flushed = await client.flush(timeout_s=120)
        flush_s = time.perf_counter() - flush_began
        stats = client.batch_stats()
    window.calls = stats.batches
    window.errors = stats.failed + stats.dropped
    return {
        "logged": stats.logged,
        "sent": stats.sent,
        "dropped": stats.dropped,
        "blocked": stats.blocked,
        "retries": stats.retries,
        "flushed": flushed,
        "flush_s": flush_s,
    }


async def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True)
    parser.add_argument("--mode", choices=("single", "batch", "sdk"), required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--start-at", type=float, required=True, help="wall-clock second the window opens")
    parser.add_argument("--seconds", type=float, required=True, help="length of the window")
    parser.add_argument("--concurrency", type=int, help="callers (single, default 64) or batches in flight (4)")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--transport", choices=("grpc", "connect-proto", "connect-json"), default="grpc")
    args = parser.parse_args(argv)
    if args.concurrency is None:
        args.concurrency = 64 if args.mode == "single" else 4
    key = os.environ["BENCH_API_KEY"]
    window = Window(args.start_at, args.start_at + args.seconds)
    extra: dict[str, Any] = {}
    if args.mode == "single":
        await run_single(args, key, window)
    elif args.mode == "batch":
        await run_batch(args, key, window)
    else:
        extra = await run_sdk(args, key, window)
    out = {
        "events": window.events,
        "seconds": window.end - window.start,
        "calls": window.calls,
        "errors": window.errors,
        "cpu_s": window.cpu_s,
        "late_s": max(0.0, window.first_send - window.start),
        "latencies_ms": [round(latency * 1000, 3) for latency in window.latencies_s],
        **extra,
    }
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
