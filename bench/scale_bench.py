"""Scale benchmark (issue 18): 10M and 100M stored feedback, 10M end users, 365 days.

Run from the repository root (see bench/README.md); not part of CI:

    make bench-scale                                                  # 10M then 100M (hours; see the README)
    .venv/bin/python bench/scale_bench.py --rows 10000000             # 10M only, about 10 min on 2 cores
    .venv/bin/python bench/scale_bench.py --rows 10000000 --markdown bench/RESULTS-scale.md

For each size in ``--rows`` (ascending, in ONE data dir, so 100M includes the first 10M), as
``evaluation_bench.py`` does and with its loader (``evaluation_bench.load_rows``):

1. Load straight through storage with no server running: the missing rows into ``feedback``, the same
   rows into ``feedback_changes`` (whose views fill the derived tables, as the service's deriver does),
   then a derived-tables checkpoint. The data: 10 models x 5 versions; 60% thumbs from ``--users``
   (10M) end users, 25% 1-5 scores and 15% labels from 200 reviewers, 8% with a comment, 2% with a
   correction; create times over ``--days`` (365) days ending 2 minutes before the run. No OPTIMIZE:
   the engine's background merges are given up to ``--merge-wait-s`` to go quiet. Then the store's
   own snapshot SQL runs in the child for a profile: rows and marks the engine reads (EXPLAIN ESTIMATE)
   and its time inside the engine.
2. The server starts on the data dir as a subprocess (tests/support's ServerProcess): start-up time and
   the ``derived_tables_checked`` line's duration. Measured over gRPC: the snapshot (non-follow
   StreamAggregates) of model-3 / v2 grouped by version and key, over all time, the last 30 days, the
   last 24 h, and all time bucketed by day; CompareVersions (model-3, v2 against v3, all time);
   freshness (create acknowledged -> pushed update of a follow stream); ExportFeedback records/s; the
   server's RSS (peak, VmHWM).
3. The server stops (SIGTERM); the bytes on disk per stored feedback are read.

Every figure is printed beside its limit with PASS or MISS (the limits are the issue's targets at 100M;
the absolute ones apply at every size, the growth limit to each size against the smallest), then the
extrapolation to 1B stored feedback with its basis. The exit code is 0 only when every limit passes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

REPO_ROOT = Path(__file__).resolve().parents[1]
for entry in (REPO_ROOT, REPO_ROOT / "bench"):  # run as a script: tests.support and evaluation_bench
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

import evaluation_bench as eb  # noqa: E402
from google.protobuf.timestamp_pb2 import Timestamp  # noqa: E402

from feedback_proto.v1 import aggregates_pb2  # noqa: E402
from feedback_proto.v1 import feedback_service_pb2 as pb  # noqa: E402
from tests.support.server_process import ServerProcess, child_environment  # noqa: E402

# --- the targets of issue 18 (at 100M stored feedback) ------------------------------------------------
SNAPSHOT_LIMIT_S = 0.100  # each snapshot kind
SNAPSHOT_GROWTH_LIMIT = 1.5  # each snapshot at a size / the same snapshot at the smallest size (10M)
COMPARE_LIMIT_S = 0.200
FRESHNESS_P99_LIMIT_S = eb.FRESHNESS_P99_LIMIT_S  # 2 s
EXPORT_RATE_LIMIT = eb.EXPORT_RATE_LIMIT  # 50,000 records/s
RSS_LIMIT_BYTES = 1_500_000_000  # 1.5 GB, peak RSS of the server process
EXTRAPOLATE_TO = 1_000_000_000

# --- the data set (the rest is evaluation_bench's) -----------------------------------------------------
USERS = 10_000_000
DAYS = 365
COMPARE_A, COMPARE_B = "v2", "v3"
MODEL, VERSION = eb.SNAPSHOT_MODEL, eb.SNAPSHOT_VERSION  # model-3 / v2
SNAPSHOT_KINDS = ("all time", "last 30 days", "last 24 h", "by day")
SERVER_START_TIMEOUT_S = 900.0


def _whole_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def snapshot_ranges(now: datetime) -> dict[str, tuple[datetime | None, bool]]:
    """Each snapshot kind: (start time or None for all time, bucketed by day)."""
    minute = _whole_minute(now)
    return {
        "all time": (None, False),
        "last 30 days": (minute - timedelta(days=30), False),
        "last 24 h": (minute - timedelta(days=1), False),
        "by day": (None, True),
    }


def snapshot_request(kind: str, now: datetime) -> pb.StreamAggregatesRequest:
    start, by_day = snapshot_ranges(now)[kind]
    request = eb.snapshot_request(follow=False, model=MODEL, version=VERSION)
    if start is not None:
        timestamp = Timestamp()
        timestamp.FromDatetime(start)
        request.filter.start_time.CopyFrom(timestamp)
    if by_day:
        request.time_bucket = aggregates_pb2.TIME_BUCKET_DAY
    return request


# =====================================================================================================
# Storage side: a child process (one process per embedded data dir; the server is stopped).
# =====================================================================================================

_PARTS_SQL = (
    "SELECT table, count(), sum(rows), sum(bytes_on_disk) FROM system.parts "
    "WHERE database = 'feedback' AND active GROUP BY table ORDER BY table"
)


def _tables(client: Any) -> dict[str, dict[str, int]]:
    return {
        table: {"parts": int(parts), "rows": int(rows), "bytes": int(size)}
        for table, parts, rows, size in client.query(_PARTS_SQL).result_rows
    }


def _profile(client: Any, now: datetime) -> dict[str, dict[str, float]]:
    """The store's own SQL of each snapshot and of CompareVersions: rows and marks the engine reads
    (EXPLAIN ESTIMATE, after primary-key and index analysis) and its median time in the engine."""
    from feedback_service.domain.evaluation.aggregates import (  # noqa: PLC0415
        AggregateQuery,
        FeedbackScope,
        GroupField,
        TimeBucket,
    )
    from feedback_service.store import feedback_store  # noqa: PLC0415

    group_by = (GroupField.MODEL_VERSION, GroupField.KEY)
    queries: dict[str, AggregateQuery] = {}
    for kind, (start, by_day) in snapshot_ranges(now).items():
        scope = FeedbackScope(project=eb.PROJECT, models=(MODEL,), model_versions=(VERSION,), start_time=start)
        queries[kind] = AggregateQuery(scope, group_by, TimeBucket.DAY if by_day else TimeBucket.NONE)
    queries["CompareVersions"] = AggregateQuery(
        FeedbackScope(project=eb.PROJECT, models=(MODEL,), model_versions=(COMPARE_A, COMPARE_B)), group_by
    )
    profile: dict[str, dict[str, float]] = {}
    for kind, query in queries.items():
        statements = [feedback_store._aggregate_query(query)]
        rows = marks = 0
        tables: dict[str, int] = {}
        for sql, parameters in statements:
            for _database, table, _parts, table_rows, table_marks in client.query(
                f"EXPLAIN ESTIMATE {sql}", parameters=parameters
            ).result_rows:
                rows += int(table_rows)
                marks += int(table_marks)
                tables[table] = tables.get(table, 0) + int(table_rows)
        times = []
        for _ in range(4):
            began = time.perf_counter()
            for sql, parameters in statements:
                client.query(sql, parameters=parameters)
            times.append(time.perf_counter() - began)
        profile[kind] = {
            "rows": rows,
            "marks": marks,
            "engine_s": statistics.median(times[1:]),
            **{f"rows_{table}": n for table, n in tables.items()},
        }
    return profile


def _storage_main(argv: Sequence[str]) -> None:
    """``scale_bench.py _storage DIR load START COUNT WINDOW_END_US MERGE_WAIT_S USERS DAYS NOW_US``,
    or ``... DIR stats``. Prints one JSON object."""
    import clickhouse_connect  # noqa: PLC0415  (only the storage child loads the embedded engine)

    from feedback_service.store import data_dir_lock  # noqa: PLC0415
    from feedback_service.store.rows import COLUMN_NAMES  # noqa: PLC0415

    data_dir, command, *rest = argv
    lock = data_dir_lock.acquire(Path(data_dir))  # refuses to run while a server holds the dir
    try:
        client = clickhouse_connect.get_client(interface="chdb", path=data_dir, database="feedback")
        out: dict[str, Any] = {}
        if command == "load":
            start, count, window_end_us = (int(value) for value in rest[:3])
            merge_wait_s = float(rest[3])
            users, days, now_us = (int(value) for value in rest[4:7])
            began = time.perf_counter()
            eb.load_rows(client, COLUMN_NAMES, start, count, window_end_us, window_s=days * 86_400, users=users)
            out["load_s"] = time.perf_counter() - began
            out["tables_inserted"] = _tables(client)
            out["merge_wait_s"] = eb._wait_for_merges(client, merge_wait_s)
            out["profile"] = _profile(client, datetime.fromtimestamp(now_us / 1e6, UTC))
        out["tables"] = _tables(client)
        client.close()
    finally:
        data_dir_lock.release(lock)
    du = subprocess.run(["du", "-sb", data_dir], capture_output=True, text=True, check=True)  # noqa: S603, S607
    out["dir_bytes"] = int(du.stdout.split()[0])
    print(json.dumps(out))


def storage(data_dir: Path, *arguments: object) -> dict[str, Any]:
    """Run a storage command in a child process (the server must be stopped)."""
    command = [sys.executable, str(Path(__file__).resolve()), "_storage", str(data_dir), *map(str, arguments)]
    done = subprocess.run(  # noqa: S603  (our own interpreter and script)
        command, env=child_environment(), capture_output=True, text=True, timeout=6 * 3600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"storage command {arguments} failed with {done.returncode}:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# =====================================================================================================
# Measurements over gRPC.
# =====================================================================================================


def memory_bytes(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in bytes (Linux /proc)."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) * 1024
    return values


async def measure_compare(stub: Any, *, warmup: int, calls: int) -> tuple[list[float], int]:
    request = pb.CompareVersionsRequest(project=eb.PROJECT, model=MODEL, version_a=COMPARE_A, version_b=COMPARE_B)
    times: list[float] = []
    keys = 0
    for call in range(warmup + calls):
        began = time.perf_counter()
        response = await stub.CompareVersions(request, timeout=120, metadata=eb.AUTH)
        if call >= warmup:
            times.append(time.perf_counter() - began)
        keys = len(response.comparisons)
    return times, keys


@dataclass
class SizeResult:
    rows: int
    load_s: float
    merge_wait_s: float
    after_load: dict[str, Any]
    after_run: dict[str, Any]
    start_s: float  # launch -> listening
    check_ms: float  # derived_tables_checked duration_ms
    check_revisions: int
    snapshots: dict[str, eb.SnapshotResult]
    compare_s: list[float]
    freshness: eb.FreshnessResult
    exports: list[eb.ExportResult]
    rss_settled: int
    rss_peak: int
    other_load: float
    profile: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def disk_bytes(self) -> int:
        return sum(table["bytes"] for table in self.after_run["tables"].values())

    @property
    def stored(self) -> int:
        return int(self.after_run["tables"]["feedback"]["rows"])


@dataclass
class Options:
    sizes: list[int]
    users: int
    days: int
    snapshot_calls: int
    freshness_samples: int
    export_records: int
    export_seconds: float
    settle_s: float
    merge_wait_s: float
    data_dir: Path | None
    markdown: Path | None


log = eb.log


async def run_size(options: Options, data_dir: Path, rows: int, loaded: int, window_end_us: int) -> SizeResult:
    now_us = int(time.time() * 1_000_000)
    log(f"loading {rows - loaded:,} rows into feedback and feedback_changes ({loaded:,} stored) ...")
    after_load = storage(
        data_dir,
        "load",
        loaded,
        rows - loaded,
        window_end_us,
        options.merge_wait_s,
        options.users,
        options.days,
        now_us,
    )
    load_s = float(after_load["load_s"])
    inserted = after_load["tables_inserted"]
    log(
        f"loaded in {load_s:.1f} s ({(rows - loaded) / load_s:,.0f} rows/s); background merges quiet after "
        f"{after_load['merge_wait_s']:.0f} s; "
        + ", ".join(
            f"{table} {t['rows']:,} rows in {t['parts']} parts"
            for table, t in after_load["tables"].items()
            if table in inserted and t["rows"] > 1000
        )
    )
    for kind, figures in after_load["profile"].items():
        log(
            f"profile {kind}: reads {figures['rows']:,.0f} rows ({figures['marks']:,.0f} marks), "
            f"{figures['engine_s'] * 1000:.1f} ms in the engine"
        )
    server = ServerProcess(data_dir, log_path=data_dir.parent / f"server-{rows}.log")
    began = time.monotonic()
    await server.start_async(timeout_s=SERVER_START_TIMEOUT_S)
    try:
        start_s = time.monotonic() - began
        check = next((e for e in server.log_events() if e.get("event") == "derived_tables_checked"), {})
        check_ms = float(check.get("duration_ms", math.nan))
        log(
            f"server pid {server.pid} listening after {start_s:.1f} s; derived_tables_checked "
            f"{check_ms:,.0f} ms over {check.get('revisions_checked', '?')} revisions ({check.get('scope', '?')})"
        )
        waited, share = await eb.settle(server.pid, options.settle_s)
        rss_settled = memory_bytes(server.pid)["VmRSS"]
        log(f"settled {waited:.0f} s ({share:.0%} of a core in the last second); RSS {rss_settled / 1e6:,.0f} MB")
        machine_before, ours_before = eb.machine_busy_s(), eb.server_cpu_s(server.pid) + time.process_time()
        measuring_since = time.monotonic()
        channel_options = [("grpc.max_receive_message_length", eb.MAX_MESSAGE_BYTES)]
        snapshots: dict[str, eb.SnapshotResult] = {}
        exports: list[eb.ExportResult] = []
        now = datetime.fromtimestamp(now_us / 1e6, UTC)
        async with grpc.aio.insecure_channel(server.target, options=channel_options) as channel:
            stub = eb._stub(channel)
            for kind in SNAPSHOT_KINDS:
                snap = await eb.measure_snapshot(
                    stub, server.pid, warmup=2, calls=options.snapshot_calls, request=snapshot_request(kind, now)
                )
                snapshots[kind] = snap
                log(
                    f"snapshot {kind}: median {snap.median_s * 1000:.1f} ms (min {min(snap.times_s) * 1000:.1f}, "
                    f"max {max(snap.times_s) * 1000:.1f}); {snap.groups} groups, {snap.feedback_count:,} feedback; "
                    f"server CPU {snap.cpu_per_call_s * 1000:.0f} ms per call"
                )
            compare_s, keys = await measure_compare(stub, warmup=2, calls=options.snapshot_calls)
            log(f"CompareVersions: median {statistics.median(compare_s) * 1000:.1f} ms; {keys} keys")
            freshness = await eb.measure_freshness(stub, server.pid, samples=options.freshness_samples, idle_s=5.0)
            log(
                f"freshness: p50 {freshness.p50_s * 1000:.0f} ms, p99 {freshness.p99_s * 1000:.0f} ms over "
                f"{len(freshness.delays_s)} samples ({freshness.timeouts} timeouts)"
            )
            for chunk_size in (1000, 10_000):
                export = await eb.measure_export(
                    stub,
                    server.pid,
                    chunk_size=chunk_size,
                    limit=options.export_records,
                    budget_s=options.export_seconds,
                )
                exports.append(export)
                log(f"export chunk_size {chunk_size:,}: {export.records:,} records, {export.rate:,.0f} records/s")
        rss_peak = memory_bytes(server.pid)["VmHWM"]
        ours = eb.server_cpu_s(server.pid) + time.process_time() - ours_before
        other_load = max(0.0, eb.machine_busy_s() - machine_before - ours) / (time.monotonic() - measuring_since)
        log(f"server peak RSS {rss_peak / 1e6:,.0f} MB; other processes used {other_load:.2f} cores")
        exit_code = await server.terminate_async(timeout_s=300)
        if exit_code != 0:
            raise RuntimeError(f"server exited with {exit_code}; log: {server.log_path}")
    finally:
        server.kill()
    after_run = storage(data_dir, "stats")
    result = SizeResult(
        rows=rows,
        load_s=load_s,
        merge_wait_s=float(after_load["merge_wait_s"]),
        after_load=after_load,
        after_run=after_run,
        start_s=start_s,
        check_ms=check_ms,
        check_revisions=int(check.get("revisions_checked", -1)),
        snapshots=snapshots,
        compare_s=compare_s,
        freshness=freshness,
        exports=exports,
        rss_settled=rss_settled,
        rss_peak=rss_peak,
        other_load=other_load,
        profile=after_load["profile"],
    )
    log(
        f"on disk: {result.disk_bytes / 1e9:.2f} GB in active parts ({result.disk_bytes / result.stored:.0f} bytes per "
        f"stored feedback), data dir {after_run['dir_bytes'] / 1e9:.2f} GB"
    )
    return result


# =====================================================================================================
# Report.
# =====================================================================================================

_verdict = eb._verdict
_ms = eb._ms
_label = eb._rows_label


def result_rows(results: Sequence[SizeResult]) -> list[tuple[str, str, str, str, str]]:
    """(figure, stored rows, measured, limit, verdict)."""
    table: list[tuple[str, str, str, str, str]] = []
    base = results[0]
    for result in results:
        label = _label(result.rows)
        table.append(
            (
                "load straight through storage (info)",
                label,
                f"{result.load_s:,.0f} s ({(result.rows - _previous(results, result)) / result.load_s:,.0f} rows/s)",
                "-",
                "",
            )
        )
        table.append(("server start -> listening (info)", label, f"{result.start_s:.1f} s", "-", ""))
        table.append(
            (
                f"  derived_tables_checked ({result.check_revisions:,} revisions; info)",
                label,
                f"{result.check_ms:,.0f} ms",
                "-",
                "",
            )
        )
        for kind in SNAPSHOT_KINDS:
            snap = result.snapshots[kind]
            rows_read = result.profile.get(kind, {}).get("rows", math.nan)
            table.append(
                (
                    f"snapshot {kind}, median of {len(snap.times_s)} ({rows_read:,.0f} rows read)",
                    label,
                    _ms(snap.median_s),
                    f"<= {SNAPSHOT_LIMIT_S * 1000:.0f} ms",
                    _verdict(snap.median_s <= SNAPSHOT_LIMIT_S),
                )
            )
            if result is not base:
                ratio = snap.median_s / base.snapshots[kind].median_s
                table.append(
                    (
                        f"  snapshot {kind} / at {_label(base.rows)}",
                        label,
                        f"{ratio:.2f}x",
                        f"<= {SNAPSHOT_GROWTH_LIMIT:g}x",
                        _verdict(ratio <= SNAPSHOT_GROWTH_LIMIT),
                    )
                )
        compare = statistics.median(result.compare_s)
        rows_read = result.profile.get("CompareVersions", {}).get("rows", math.nan)
        table.append(
            (
                f"CompareVersions, median of {len(result.compare_s)} ({rows_read:,.0f} rows read)",
                label,
                _ms(compare),
                f"<= {COMPARE_LIMIT_S * 1000:.0f} ms",
                _verdict(compare <= COMPARE_LIMIT_S),
            )
        )
        fresh = result.freshness
        table.append(
            (
                f"freshness p99 ({len(fresh.delays_s)} samples; p50 {_ms(fresh.p50_s)})",
                label,
                _ms(fresh.p99_s),
                f"<= {FRESHNESS_P99_LIMIT_S * 1000:.0f} ms",
                _verdict(fresh.p99_s <= FRESHNESS_P99_LIMIT_S and not fresh.timeouts),
            )
        )
        for export in result.exports:
            capped = ", time-capped" if export.capped_by_time else ""
            table.append(
                (
                    f"export chunk {export.chunk_size:,} ({export.records:,} rec{capped})",
                    label,
                    f"{export.rate:,.0f} rec/s",
                    f">= {EXPORT_RATE_LIMIT:,.0f} rec/s",
                    _verdict(export.rate >= EXPORT_RATE_LIMIT),
                )
            )
        table.append(
            (
                f"server RSS, peak (VmHWM; settled {result.rss_settled / 1e6:,.0f} MB)",
                label,
                f"{result.rss_peak / 1e6:,.0f} MB",
                f"<= {RSS_LIMIT_BYTES / 1e6:,.0f} MB",
                _verdict(result.rss_peak <= RSS_LIMIT_BYTES),
            )
        )
        table.append(
            (
                "disk bytes per stored feedback (info; active parts of every table)",
                label,
                f"{result.disk_bytes / result.stored:,.0f} B ({result.disk_bytes / 1e9:.2f} GB)",
                "-",
                "",
            )
        )
        table.append(("other processes' CPU while measuring (info)", label, f"{result.other_load:.2f} cores", "-", ""))
    return table


def _previous(results: Sequence[SizeResult], result: SizeResult) -> int:
    index = list(results).index(result)
    return results[index - 1].rows if index else 0


def _scaled(values: Sequence[tuple[int, float]]) -> tuple[float, str]:
    """A figure at EXTRAPOLATE_TO stored rows from (rows, figure) measured at one or more sizes."""
    (small_rows, small), (large_rows, large) = values[0], values[-1]
    if len(values) >= 2 and small > 0 and large > 0:
        exponent = math.log(large / small) / math.log(large_rows / small_rows)
        basis = f"power law through {_label(small_rows)} and {_label(large_rows)} (exponent {exponent:.2f})"
        return large * (EXTRAPOLATE_TO / large_rows) ** exponent, basis
    return large * EXTRAPOLATE_TO / large_rows, f"linear in stored rows from {_label(large_rows)} (an upper bound)"


def extrapolation_lines(results: Sequence[SizeResult]) -> list[str]:
    """The 1B figures, each with its basis."""
    last = results[-1]
    lines = [f"Extrapolation to {EXTRAPOLATE_TO:,} stored feedback:"]
    per_row = last.disk_bytes / last.stored
    lines.append(
        f"- disk: {per_row * EXTRAPOLATE_TO / 1e9:,.0f} GB ({per_row:,.0f} bytes per stored feedback at "
        f"{_label(last.rows)}, linear in rows: every table but the rollups grows with feedback)"
    )
    rate = (last.rows - _previous(results, last)) / last.load_s
    lines.append(
        f"- load straight through storage: {EXTRAPOLATE_TO / rate / 3600:,.1f} h at the {_label(last.rows)} "
        f"load rate of {rate:,.0f} rows/s (linear in rows)"
    )
    for kind in SNAPSHOT_KINDS:
        value, basis = _scaled([(r.rows, r.snapshots[kind].median_s) for r in results])
        lines.append(f"- snapshot {kind}: {_ms(value)} ({basis})")
    value, basis = _scaled([(r.rows, statistics.median(r.compare_s)) for r in results])
    lines.append(f"- CompareVersions: {_ms(value)} ({basis})")
    if len(results) >= 2:
        value, basis = _scaled([(r.rows, float(r.rss_peak)) for r in results])
        lines.append(f"- server peak RSS: {value / 1e6:,.0f} MB ({basis})")
    else:
        lines.append("- server peak RSS: not extrapolated from one size (it is mostly the engine's caches)")
    lines.append(
        "- freshness and export rate: not extrapolated (a follow stream recomputes one group; an export page "
        "reads by primary key from its cursor: neither depends on the stored rows beyond the measured sizes)"
    )
    return lines


async def run(options: Options) -> int:
    header = eb.environment_lines()
    for line in header:
        print(line)
    print(
        f"sizes: {', '.join(f'{rows:,}' for rows in options.sizes)} stored feedback rows; {options.users:,} end "
        f"users; {options.days} days",
        flush=True,
    )
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        data_dir = eb.migrated_data_dir(stack, options.data_dir, prefix="feedback-scale-")
        window_end_us = int((time.time() - 120) * 1_000_000)
        results: list[SizeResult] = []
        loaded = 0
        for rows in options.sizes:
            results.append(await run_size(options, data_dir, rows, loaded, window_end_us))
            loaded = rows
    table = result_rows(results)
    extrapolation = extrapolation_lines(results)
    elapsed = time.monotonic() - began
    print()
    print(eb.text_table(table))
    print()
    print("\n".join(extrapolation))
    print(f"\ntotal run time {elapsed / 60:.1f} min")
    if options.markdown is not None:
        text = "\n".join(
            [
                *(f"- {line}" for line in header),
                f"- run: `{' '.join(['bench/scale_bench.py', *sys.argv[1:]])}` ({elapsed / 60:.1f} min)",
                "",
                eb.markdown_table(table),
                "",
                *extrapolation,
                "",
            ]
        )
        options.markdown.write_text(text)
    verdicts = [row[4] for row in table if row[4] in ("PASS", "MISS")]
    return 0 if all(verdict == "PASS" for verdict in verdicts) else 1


def parse_options(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(description="Scale benchmark: 10M and 100M stored feedback (issue 18).")
    parser.add_argument("--rows", default="10000000,100000000", help="comma-separated stored-row counts, ascending")
    parser.add_argument("--users", type=int, default=USERS, help="end users giving thumbs (default 10,000,000)")
    parser.add_argument("--days", type=int, default=DAYS, help="days the create times span (default 365)")
    parser.add_argument("--snapshot-calls", type=int, default=7, help="measured calls per snapshot kind")
    parser.add_argument("--freshness-samples", type=int, default=100, help="create-to-push samples")
    parser.add_argument("--export-records", type=int, default=1_000_000, help="stop an export after this many")
    parser.add_argument("--export-seconds", type=float, default=60.0, help="stop an export after this long")
    parser.add_argument("--settle-s", type=float, default=120.0, help="most to wait for the server to go idle")
    parser.add_argument(
        "--merge-wait-s", type=float, default=600.0, help="after a load, most to wait for background merges"
    )
    parser.add_argument("--data-dir", type=Path, help="work dir to keep (default: a temp dir, removed)")
    parser.add_argument("--markdown", type=Path, help="also write the results as markdown here")
    arguments = parser.parse_args(argv)
    sizes = [int(part.replace("_", "")) for part in arguments.rows.split(",") if part.strip()]
    if not sizes or sizes != sorted(set(sizes)) or sizes[0] <= 0:
        parser.error("--rows must be positive counts in ascending order")
    return Options(
        sizes=sizes,
        users=arguments.users,
        days=arguments.days,
        snapshot_calls=arguments.snapshot_calls,
        freshness_samples=arguments.freshness_samples,
        export_records=arguments.export_records,
        export_seconds=arguments.export_seconds,
        settle_s=arguments.settle_s,
        merge_wait_s=arguments.merge_wait_s,
        data_dir=arguments.data_dir,
        markdown=arguments.markdown,
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["_storage"]:
        _storage_main(arguments[1:])
        return 0
    return asyncio.run(run(parse_options(arguments)))


if __name__ == "__main__":
    sys.exit(main())
