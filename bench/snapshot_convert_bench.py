"""Python cost of turning one StreamAggregates snapshot into messages, without the store.

Run from the repository root:

    .venv/bin/python bench/snapshot_convert_bench.py              # 1,100 groups, median of 15 runs
    .venv/bin/python bench/snapshot_convert_bench.py --profile    # and a cProfile of one more run

The groups are those of a snapshot of one model/version grouped by model_version + key and bucketed
by day over a year: 365 days x the three keys of bench/evaluation_bench.py's mix (``thumbs``: thumbs
from end users, ``helpfulness``: a 1-5 score, five distinct values, ``topic``: six labels), 1,095
``GroupCounts`` built directly, with comments, corrections and distinct authors. ``--dense`` gives
every group thumbs, six labels and five score values at once (the worst case per group).

One run is what the server does per group after the store has decoded it: the domain statistics
(``stats_of``) and the ``StreamAggregatesResponse`` the servicer yields (built by
``feedback_service.api.evaluation_convert.aggregate_response``). It is timed in process CPU time;
the table shows the median of ``--runs`` runs (after one warm-up run) beside the limit, and the
serialization of the responses (done by gRPC, outside the limit) for reference.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_service.api.evaluation_convert import aggregate_response
from feedback_service.domain.evaluation.aggregates import GroupCounts, GroupKey
from feedback_service.domain.evaluation.operations import GroupUpdate, stats_of

LIMIT_S = 0.040  # Python time per snapshot of GROUPS groups
DAYS = 365
KEYS = ("thumbs", "helpfulness", "topic")
LABELS = ("billing", "bug", "feature_request", "off_topic", "praise", "other")
SCORES = (1.0, 2.0, 3.0, 4.0, 5.0)


def _thumbs(draw: random.Random, count: int) -> tuple[int, int]:
    up = sum(1 for _ in range(count) if draw.random() < 0.72) if count < 200 else round(count * draw.uniform(0.6, 0.8))
    return up, count - up


def _split(draw: random.Random, count: int, parts: int) -> list[int]:
    cuts = sorted(draw.randint(0, count) for _ in range(parts - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, count], strict=True)]


def snapshot_groups(*, days: int = DAYS, dense: bool = False, seed: int = 7) -> list[GroupCounts]:
    """The groups of one day-bucketed snapshot of one model/version (see the module docstring)."""
    draw = random.Random(seed)  # noqa: S311 (reproducible test data, no secrets)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    groups: list[GroupCounts] = []
    for day in range(days):
        bucket_start = start + timedelta(days=day)
        for key in KEYS:
            count = draw.randint(50, 3000)
            up = down = 0
            labels: dict[str, int] = {}
            scores: dict[float, int] = {}
            if dense or key == "thumbs":
                up, down = _thumbs(draw, count)
            if dense or key == "topic":
                labels = dict(zip(LABELS, _split(draw, count, len(LABELS)), strict=True))
            if dense or key == "helpfulness":
                scores = {value: n for value, n in zip(SCORES, _split(draw, count, len(SCORES)), strict=True) if n}
            groups.append(
                GroupCounts(
                    key=GroupKey(model_version="v2", key=key, bucket_start=bucket_start),
                    count=count,
                    thumbs_up=up,
                    thumbs_down=down,
                    comments=count * 8 // 100,
                    corrections=count * 2 // 100,
                    labels=labels,
                    scores=scores,
                    distinct_authors=min(count, 200) if key != "thumbs" else count * 9 // 10,
                )
            )
    return groups


def convert(groups: Sequence[GroupCounts]) -> list[pb.StreamAggregatesResponse]:
    """What the server does with each group of a snapshot once the store has decoded it."""
    return [aggregate_response(GroupUpdate(counts.key, stats_of(counts))) for counts in groups]


def cpu_times(groups: Sequence[GroupCounts], runs: int) -> list[float]:
    convert(groups)  # warm-up
    times = []
    for _ in range(runs):
        started = time.process_time()
        convert(groups)
        times.append(time.process_time() - started)
    return times


def serialize_time(responses: Sequence[pb.StreamAggregatesResponse], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.process_time()
        for response in responses:
            response.SerializeToString()
        times.append(time.process_time() - started)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="timed runs (median reported); default 15")
    parser.add_argument("--days", type=int, default=DAYS, help=f"day buckets; default {DAYS}")
    parser.add_argument("--dense", action="store_true", help="every group has thumbs, labels and scores")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one run")
    options = parser.parse_args(argv)

    groups = snapshot_groups(days=options.days, dense=options.dense)
    median_s = statistics.median(cpu_times(groups, options.runs))
    responses = convert(groups)
    limit_s = LIMIT_S * len(groups) / (DAYS * len(KEYS))
    mix = "dense" if options.dense else "bench mix"
    rows = [
        ("measure", "result", "limit", ""),
        (
            f"convert {len(groups)} groups ({mix}), CPU, median of {options.runs}",
            f"{median_s * 1000:.1f} ms",
            f"{limit_s * 1000:.0f} ms",
            "PASS" if median_s <= limit_s else "MISS",
        ),
        ("  per group", f"{median_s / len(groups) * 1e6:.1f} us", "", ""),
        ("serialize the responses (gRPC's part, no limit)", f"{serialize_time(responses, 5) * 1000:.1f} ms", "", ""),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())

    if options.profile:
        profile = cProfile.Profile()
        profile.runcall(convert, groups)
        pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(25)
    return 0 if median_s <= limit_s else 1


if __name__ == "__main__":
    sys.exit(main())
