"""The floor under a snapshot bucketed by day: what grpc.aio alone costs to stream one message per group.

Run from the repository root:

    .venv/bin/python bench/grpc_stream_floor.py                 # 1,098 messages (365 days x 3 keys + 3)
    .venv/bin/python bench/grpc_stream_floor.py --messages 100

StreamAggregates sends one ``StreamAggregatesResponse`` per group. A by-day snapshot over a year is ~1,100
groups, so ~1,100 messages, and grpc.aio pays a round through its completion queue and the event loop for
every message sent and every message received. This script measures exactly that and nothing else: a
grpc.aio server in this process streams ``--messages`` copies of one already serialized group message
(no store, no statistics, no conversion) to a grpc.aio client in this process, over 127.0.0.1, as
``bench/scale_bench.py``'s client reads them. It prints the wall time per stream (median of ``--runs``)
and the CPU time of the process (server and client together) beside the by-day snapshot limit of the
scale benchmark (100 ms), for comparison with its by-day figure.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Sequence

import grpc

from feedback_proto.v1 import aggregates_pb2 as agg
from feedback_proto.v1 import feedback_service_pb2 as pb

SNAPSHOT_LIMIT_S = 0.100  # bench/scale_bench.py's limit for each snapshot, by day included
BY_DAY_MESSAGES = 1098  # 366 days (a year's window touches 366 dates) x 3 keys


def _group_message() -> bytes:
    """One group as a by-day snapshot sends it (key, bucket, counts, thumbs)."""
    message = pb.StreamAggregatesResponse(
        group=agg.AggregateGroup(key=agg.GroupKey(model="model-3", model_version="v2", key="thumbs"))
    )
    message.group.key.bucket_start.FromSeconds(1_764_806_400)
    message.group.stats.count = 5_473
    message.group.stats.thumbs.up = 3_940
    message.group.stats.thumbs.down = 1_533
    return message.SerializeToString()


def _identity(data: bytes) -> bytes:
    return data


async def measure(messages: int, runs: int) -> tuple[list[float], list[float]]:
    """Wall and process CPU seconds of each of ``runs`` streams of ``messages`` messages (after a warm-up)."""
    payload = _group_message()

    async def stream(_request: bytes, _context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        for _ in range(messages):
            yield payload

    server = grpc.aio.server()
    handler = grpc.unary_stream_rpc_method_handler(
        stream, request_deserializer=_identity, response_serializer=_identity
    )
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("floor.Floor", {"Stream": handler})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    walls: list[float] = []
    cpus: list[float] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_stream(
                "/floor.Floor/Stream", request_serializer=_identity, response_deserializer=_identity
            )
            for run in range(runs + 1):
                cpu, wall = time.process_time(), time.perf_counter()
                received = 0
                async for _ in call(b""):
                    received += 1
                assert received == messages
                if run:  # the first stream warms the channel up
                    walls.append(time.perf_counter() - wall)
                    cpus.append(time.process_time() - cpu)
    finally:
        await server.stop(0)
    return walls, cpus


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=BY_DAY_MESSAGES, help="messages per stream")
    parser.add_argument("--runs", type=int, default=15, help="measured streams")
    options = parser.parse_args(argv)
    walls, cpus = asyncio.run(measure(options.messages, options.runs))
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(f"grpc.aio stream of {options.messages:,} group messages, nothing else, median of {options.runs}:")
    print(f"  wall {wall * 1000:.1f} ms per stream ({wall / options.messages * 1e6:.0f} us per message)")
    print(f"  CPU of server and client together {cpu * 1000:.1f} ms per stream")
    print(
        f"  the by-day snapshot limit is {SNAPSHOT_LIMIT_S * 1000:.0f} ms: this floor alone is "
        f"{wall / SNAPSHOT_LIMIT_S:.0%} of it"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
