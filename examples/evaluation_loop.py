"""An evaluation loop: follow the feedback aggregates of one model, version by version, and print them
whenever they change.

    FEEDBACK_API_KEY=<a key with the read scope> python examples/evaluation_loop.py --project demo --model support-bot
    python examples/evaluation_loop.py --project demo --model support-bot --duration 10 --target 127.0.0.1:50051

Needs only the light client: pip install ./clients/python
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import Sequence

from feedback_client import FeedbackClient
from feedback_proto.v1 import aggregates_pb2, feedback_service_pb2

HEADER = f"{'version':<12} {'key':<14} {'count':>6} {'thumbs +/-':>11} {'positive (95% CI)':>22} {'mean score':>10}"


def describe(group: aggregates_pb2.AggregateGroup) -> str:
    stats = group.stats
    thumbs = stats.thumbs
    votes = thumbs.up + thumbs.down
    rate = f"{thumbs.positive_rate:6.1%} [{thumbs.wilson_lower:.2f}-{thumbs.wilson_upper:.2f}]" if votes else "-"
    mean = f"{stats.scores.mean:.3f}" if stats.scores.count else "-"
    return (
        f"{group.key.model_version:<12} {group.key.key:<14} {stats.count:>6} "
        f"{f'{thumbs.up}/{thumbs.down}':>11} {rate:>22} {mean:>10}"
    )


async def follow(target: str, api_key: str | None, project: str, model: str) -> None:
    request = feedback_service_pb2.StreamAggregatesRequest(
        filter=aggregates_pb2.AggregateFilter(project=project, models=[model]),
        group_by=[aggregates_pb2.GROUP_BY_FIELD_MODEL_VERSION, aggregates_pb2.GROUP_BY_FIELD_KEY],
        follow=True,
    )
    async with FeedbackClient(target, api_key=api_key) as client:
        print(HEADER)
        async for message in client.stream_aggregates(request):
            event = message.WhichOneof("event")
            if event == "group":
                print(describe(message.group), flush=True)
            elif event == "snapshot_complete":
                done = message.snapshot_complete
                print(f"-- snapshot complete: {done.group_count} groups; following changes --", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="127.0.0.1:50051", help="feedback service address")
    parser.add_argument("--api-key", default=os.environ.get("FEEDBACK_API_KEY"), help="default: $FEEDBACK_API_KEY")
    parser.add_argument("--project", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    options = parser.parse_args(argv)
    with contextlib.suppress(TimeoutError, KeyboardInterrupt):
        asyncio.run(
            asyncio.wait_for(follow(options.target, options.api_key, options.project, options.model), options.duration)
        )


if __name__ == "__main__":
    main()
