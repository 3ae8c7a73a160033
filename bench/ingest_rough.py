"""Rough ingest figures (a first look; the full ingest harness is the performance issue's job).

Start a server, then point this at it:

    .venv/bin/feedback serve --data-dir /tmp/ingest-data --listen 127.0.0.1:50999 --log-level warning &
    .venv/bin/python bench/ingest_rough.py --target 127.0.0.1:50999 --key-file /tmp/ingest-data/admin.key

Prints CreateFeedback calls/s with 64 concurrent callers (p50/p99 latency) and BatchCreateFeedback
events/s with 1,000-item batches, 1 and 4 in flight. Client and server share the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path

import grpc

from feedback_proto.v1 import feedback_pb2, feedback_service_pb2, feedback_service_pb2_grpc

PROJECT = "ingest-bench"


def _item(i: int) -> feedback_pb2.Feedback:
    return feedback_pb2.Feedback(
        project=PROJECT,
        trace_id=uuid.uuid4().hex,
        key="thumbs",
        thumb=feedback_pb2.THUMB_UP,
        model="m",
        model_version="v1",
        source=feedback_pb2.SOURCE_USER,
        author=f"user{i % 1000}",
    )


async def singles(stub: feedback_service_pb2_grpc.FeedbackServiceStub, seconds: float, callers: int) -> None:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def caller() -> None:
        i = 0
        while time.perf_counter() < stop:
            started = time.perf_counter()
            await stub.CreateFeedback(feedback_service_pb2.CreateFeedbackRequest(feedback=_item(i)))
            latencies.append(time.perf_counter() - started)
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    print(
        f"CreateFeedback, {callers} concurrent callers: {len(latencies) / elapsed:,.0f} calls/s, "
        f"p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms"
    )


async def batches(stub: feedback_service_pb2_grpc.FeedbackServiceStub, seconds: float, in_flight: int) -> None:
    items = [_item(i) for i in range(1000)]
    events = 0
    stop = time.perf_counter() + seconds

    async def sender() -> None:
        nonlocal events
        while time.perf_counter() < stop:
            await stub.BatchCreateFeedback(feedback_service_pb2.BatchCreateFeedbackRequest(feedback=items))
            events += len(items)

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(in_flight)))
    rate = events / (time.perf_counter() - started)
    print(f"BatchCreateFeedback, 1,000-item batches, {in_flight} in flight: {rate:,.0f} events/s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--key-file", type=Path, required=True, help="an API key with the ingest scope")
    parser.add_argument("--seconds", type=float, default=10.0)
    options = parser.parse_args()
    metadata = (("authorization", f"Bearer {options.key_file.read_text().strip()}"),)

    class WithKey(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]  # grpcio is untyped
        async def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
            details = grpc.aio.ClientCallDetails(
                details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
            )
            return await continuation(details, request)

    async with grpc.aio.insecure_channel(options.target, interceptors=[WithKey()]) as channel:
        stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
        await singles(stub, options.seconds, 64)
        for in_flight in (1, 4):
            await batches(stub, options.seconds, in_flight)


if __name__ == "__main__":
    asyncio.run(main())
