"""Speed of the evaluation read paths: StreamAggregates snapshots, follow freshness, ExportFeedback.

Run from the repository root (see bench/README.md):

    .venv/bin/python bench/evaluation_bench.py                        # 1M and 10M stored rows, < 15 min
    .venv/bin/python bench/evaluation_bench.py --quick                # 100k and 1M rows, fewer samples, < 3 min
    .venv/bin/python bench/evaluation_bench.py --rows 1000000,10000000 --markdown results.md

What happens, for each size in ``--rows`` (ascending, in ONE data dir, so each size includes the
smaller ones):

1. With no server running, a child process opens the data dir with clickhouse-connect's embedded
   engine (chdb) and generates the missing rows server-side with ``INSERT INTO feedback (...)
   SELECT ... FROM numbers(...)``: revision-1 creates only, as the service writes them (full
   column list of ``feedback_service.store.rows``, ``prev_exists = 0``); then the same rows go into
   ``feedback_changes``, as the service's deriver sends them, so its materialized views fill
   ``feedback_rollups`` and the other derived tables exactly as for real creates; a derived-tables
   checkpoint is recorded, so the server's start-up check covers only what is stored after it. No
   ``OPTIMIZE``: the child waits until the engine's own background merges go quiet
   (``--merge-wait-s``), and the tables are measured as the load and those merges left them (rows
   and parts are printed).
2. ``python -m feedback_service serve`` starts on that dir as a subprocess (tests/support's
   ServerProcess), is given up to ``--settle-s`` to go idle, and everything is measured over a
   real gRPC channel from this process:
   - snapshot: a non-follow StreamAggregates (filter project + model + one version, group by
     model_version + key); median of ``--snapshot-calls`` after warm-up calls;
   - freshness: a follow StreamAggregates is open; each sample is one CreateFeedback, timed from
     the client receiving its response to the stream pushing the group whose count includes it;
   - export: ExportFeedback of the whole project (non-follow) with chunk_size 1,000 and 10,000,
     records/s seen by a grpc.aio client (every record parsed and touched), stopped after
     ``--export-records`` records or ``--export-seconds`` seconds, whichever comes first.
3. The server is stopped (SIGTERM), the part counts are read again, and the next size is loaded.

The table at the end puts every figure beside its limit with PASS or MISS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import grpc

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `tests.support` importable
    sys.path.insert(0, str(REPO_ROOT))

from feedback_proto.v1 import aggregates_pb2, feedback_pb2, feedback_service_pb2_grpc  # noqa: E402
from feedback_proto.v1 import feedback_service_pb2 as pb  # noqa: E402
from tests.support.auth import ADMIN_KEY  # noqa: E402
from tests.support.server_process import ServerProcess, child_environment, run_cli  # noqa: E402

# --- the limits of the issue "Speed (measured by a script under bench/, not by timed tests)" ------------
SNAPSHOT_RATIO_LIMIT = 2.0  # snapshot at the largest size / at the smallest size
FRESHNESS_P50_LIMIT_S = 1.0
FRESHNESS_P99_LIMIT_S = 2.0
EXPORT_RATE_LIMIT = 50_000.0  # records/s

# --- the synthetic data set ------------------------------------------------------------------------------
PROJECT = "bench"
MODELS = 10  # model-0 .. model-9
VERSIONS = 5  # v1 .. v5
USERS = 50_000  # end users giving thumbs
REVIEWERS = 200  # reviewers giving scores and labels
WINDOW_S = 7 * 24 * 3600  # create_time spread over the last 7 days
SNAPSHOT_MODEL = "model-3"
SNAPSHOT_VERSION = "v2"
FOLLOW_MODEL = "model-0"
FOLLOW_VERSION = "v1"

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # what the server allows; a 10,000-record chunk can pass 4 MiB
GROUP_BY = [aggregates_pb2.GROUP_BY_FIELD_MODEL_VERSION, aggregates_pb2.GROUP_BY_FIELD_KEY]
FRESHNESS_TIMEOUT_S = 15.0
# ServerProcess starts the server with this bootstrap admin key; every call sends it, as a client would.
AUTH = (("authorization", f"Bearer {ADMIN_KEY}"),)


# =====================================================================================================
# Storage side: runs in a child process (one process per embedded data dir; the server is stopped).
# =====================================================================================================


# One SQL expression per column of feedback_service.store.rows.COLUMNS, over the columns of _SOURCE.
# Keys: 60% "thumbs" (a thumb from an end user of a pool of ``users``, 50,000 here, with app metadata),
# 25% "helpfulness" (a 1-5 score from one of 200 reviewers), 15% "topic" (one of six labels, reviewer);
# 8% carry a comment, 2% a correction; each row has its own feedback_id (a UUID) and trace id.
# Every value is a function of the row number (the feedback_id too): the loader generates each block
# twice, into feedback and into feedback_changes, and both must hold the same rows.
def column_expressions(users: int = USERS) -> dict[str, str]:
    """The SQL expression of each column; ``users`` is the end-user pool of the thumbs."""
    expressions = dict(_COLUMN_EXPRESSIONS)
    expressions["author"] = (
        f"if(k = 'thumbs', concat('user-', toString(a % {int(users)})), concat('reviewer-', toString(a % {REVIEWERS})))"
    )
    return expressions


_COLUMN_EXPRESSIONS: dict[str, str] = {
    "project": f"'{PROJECT}'",
    "feedback_id": (
        "toString(reinterpretAsUUID(bitOr(bitShiftLeft(toUInt128(cityHash64(number, 11)), 64), "
        "toUInt128(cityHash64(number, 12)))))"
    ),
    "trace_id": "concat(lower(hex(cityHash64(number, 1))), lower(hex(cityHash64(number, 2))))",
    "span_id": "lower(hex(cityHash64(number, 3)))",
    "session_id": "concat('session-', toString(cityHash64(number, 4) % 200000))",
    "model": f"concat('model-', toString(h % {MODELS}))",
    "model_version": f"concat('v', toString(intDiv(h, {MODELS}) % {VERSIONS} + 1))",
    "key": "k",
    "value_kind": "multiIf(k = 'thumbs', 'thumb', k = 'helpfulness', 'score', 'label')",
    "thumb": "if(k = 'thumbs', if(v % 100 < 72, 'up', 'down'), 'unspecified')",
    "score": "if(k = 'helpfulness', toFloat64(1 + v % 5), 0)",
    "label": "if(k = 'topic', ['billing', 'bug', 'feature_request', 'off_topic', 'praise', 'other'][1 + v % 6], '')",
    "comment": (
        "if(w % 100 < 8, concat('The answer ', ['missed the refund policy', 'was far too long', "
        "'cited a dead link', 'was exactly what I needed'][1 + intDiv(w, 100) % 4], ' (ticket ', "
        "toString(number), ')'), '')"
    ),
    "correction": (
        "if(w % 1000 < 20, concat('You can request a refund within 30 days of purchase from Settings > Billing > "
        "Refunds; refunds are paid to the original payment method within 5 business days. Ref ', "
        "toString(number)), '')"
    ),
    "source": "if(k = 'thumbs', 'user', 'reviewer')",
    "author": (
        f"if(k = 'thumbs', concat('user-', toString(a % {USERS})), concat('reviewer-', toString(a % {REVIEWERS})))"
    ),
    "metadata": (
        "if(k = 'thumbs', map('app_version', concat('3.2.', toString(a % 10)), "
        "'platform', ['ios', 'android', 'web'][1 + a % 3]), map())"
    ),
    "create_time": "t",
    "update_time": "t",
    "revision": "1",
    "is_deleted": "0",
    "create_fingerprint": "lower(hex(MD5(feedback_id)))",
    "prev_exists": "0",
    "prev_value_kind": "'none'",
    "prev_thumb": "'unspecified'",
    "prev_score": "0",
    "prev_label": "''",
    "prev_has_comment": "0",
    "prev_has_correction": "0",
    # Key ids of the writing credentials: an app's end-user tokens for thumbs, 20 reviewer keys.
    "created_by": "if(k = 'thumbs', 'token:5ca1ab1e0ddba11f', lower(hex(toUInt64(a % 20))))",
    "updated_by": "created_by",
}


# The random but reproducible draws each row's values come from: h (model, version), k (key),
# v (value), w (comment, correction), a (author, metadata).
_SOURCE_COLUMNS = (
    "number, cityHash64(number, 5) AS h, "
    "multiIf(cityHash64(number, 6) % 100 < 60, 'thumbs', cityHash64(number, 6) % 100 < 85, 'helpfulness', "
    "'topic') AS k, cityHash64(number, 7) AS v, cityHash64(number, 8) AS w, cityHash64(number, 9) AS a"
)


def _load_sql(
    column_names: Sequence[str],
    start: int,
    count: int,
    window_end_us: int,
    *,
    table: str = "feedback",
    window_s: int = WINDOW_S,
    users: int = USERS,
) -> str:
    """INSERT ... SELECT of rows ``start .. start+count-1`` into ``table`` (feedback or feedback_changes).

    create_time rises with the row number across the window (7 days by default, plus < 1 s of
    jitter), as it does when feedback arrives over time, so each ~1M-row insert block covers a slice
    of the window; every load covers the whole window again (the data of a larger size is spread over
    the same window).
    """
    if table not in ("feedback", "feedback_changes"):
        raise ValueError(f"not a table the loader writes: {table}")
    expressions = column_expressions(users)
    window_us = int(window_s) * 1_000_000
    select = ", ".join(name if expressions[name] == name else f"{expressions[name]} AS {name}" for name in column_names)
    create_time = (
        f"fromUnixTimestamp64Micro(toInt64({window_end_us - window_us} + intDiv(toUInt128(number - {start}) * "
        f"{window_us}, {count}) + cityHash64(number, 10) % 1000000), 'UTC')"
    )
    source = f"{_SOURCE_COLUMNS}, {create_time} AS t FROM numbers({start}, {count})"
    # Only integers computed here and constant fragments reach the SQL.
    return f"INSERT INTO {table} ({', '.join(column_names)}) SELECT {select} FROM (SELECT {source})"  # noqa: S608


# As the service's deriver inserts into feedback_changes (store/deriver.py): its views in parallel, no
# in-block merge. On a single node nothing else applies.
_CHANGES_SETTINGS = {"parallel_view_processing": 1, "optimize_on_insert": 0}


def load_rows(
    client: Any,
    column_names: Sequence[str],
    start: int,
    count: int,
    window_end_us: int,
    *,
    window_s: int = WINDOW_S,
    users: int = USERS,
) -> None:
    """Store rows ``start .. start+count-1`` as the service does, straight through storage.

    Since migration 0010 the views that fill the derived tables read ``feedback_changes`` (a Null
    table), not ``feedback``: the service inserts into ``feedback`` and its deriver then inserts the
    same rows into ``feedback_changes``. So does this: the same deterministic rows into both. Then it
    records a derived-tables checkpoint (store/derived_repair.py), so the server's start-up check
    covers only what is stored after it, not the whole database (which it would check otherwise).
    """
    from feedback_service.store.derived_repair import write_checkpoint  # noqa: PLC0415

    options = {"window_s": window_s, "users": users}
    client.command(_load_sql(column_names, start, count, window_end_us, table="feedback", **options))
    client.command(
        _load_sql(column_names, start, count, window_end_us, table="feedback_changes", **options),
        settings=_CHANGES_SETTINGS,
    )
    write_checkpoint(client, datetime.now(UTC))


_STATS_SQL = (
    "SELECT table, count(), sum(rows) FROM system.parts "
    "WHERE database = 'feedback' AND active AND table IN ('feedback', 'feedback_rollups', 'feedback_by_time') "
    "GROUP BY table"
)


def _table_stats(client: Any, suffix: str = "") -> dict[str, int]:
    stats: dict[str, int] = {}
    for table, parts, rows in client.query(_STATS_SQL).result_rows:
        stats[f"{table}_parts{suffix}"] = int(parts)
        stats[f"{table}_rows{suffix}"] = int(rows)
    return stats


def _wait_for_merges(client: Any, max_s: float, quiet_s: float = 5.0) -> float:
    """Let the engine's own background merges of the new parts run (no OPTIMIZE): wait until no merge
    has run for ``quiet_s``, at most ``max_s``; returns the seconds waited."""
    began = last_busy = time.monotonic()
    while (now := time.monotonic()) - last_busy < quiet_s and now - began < max_s:
        if client.query("SELECT count() FROM system.merges WHERE database = 'feedback'").result_rows[0][0]:
            last_busy = time.monotonic()
        time.sleep(0.25)
    return time.monotonic() - began


def _storage_main(argv: Sequence[str]) -> None:
    """``evaluation_bench.py _storage DIR stats`` or ``... DIR load START COUNT WINDOW_END_US MERGE_WAIT_S``.

    Prints a JSON object: load and merge-wait seconds, rows and active parts per table.
    """
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
            missing = set(COLUMN_NAMES) ^ set(_COLUMN_EXPRESSIONS)
            if missing:
                raise SystemExit(f"bench out of date with feedback_service.store.rows: {sorted(missing)}")
            began = time.perf_counter()
            load_rows(client, COLUMN_NAMES, start, count, window_end_us)
            out["load_s"] = time.perf_counter() - began
            out.update(_table_stats(client, "_inserted"))
            out["merge_wait_s"] = _wait_for_merges(client, merge_wait_s)
        out.update(_table_stats(client))
        client.close()
    finally:
        data_dir_lock.release(lock)
    print(json.dumps(out))


def storage(data_dir: Path, *arguments: object) -> dict[str, Any]:
    """Run a storage command in a child process (the server must be stopped)."""
    command = [sys.executable, str(Path(__file__).resolve()), "_storage", str(data_dir), *map(str, arguments)]
    done = subprocess.run(  # noqa: S603  (our own interpreter and script)
        command, env=child_environment(), capture_output=True, text=True, timeout=3600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"storage command {arguments} failed with {done.returncode}:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# =====================================================================================================
# Measurements over gRPC.
# =====================================================================================================


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 100 samples is the 99th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds all processes of the machine have used (Linux /proc/stat: all but idle and iowait)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


async def cpu_share(pid: int, seconds: float) -> float:
    """Cores the process used on average over the next ``seconds``."""
    before = server_cpu_s(pid)
    await asyncio.sleep(seconds)
    return (server_cpu_s(pid) - before) / seconds


async def settle(pid: int, max_s: float, *, idle_share: float = 0.1, idle_windows: int = 3) -> tuple[float, float]:
    """Wait until the server has used < ``idle_share`` of a core for ``idle_windows`` seconds in a row
    (start-up and any background merge done), at most ``max_s``.

    Returns (seconds waited, cores used in the last second).
    """
    began = time.monotonic()
    quiet = 0
    share = 0.0
    while quiet < idle_windows and time.monotonic() - began < max_s:
        share = await cpu_share(pid, 1.0)
        quiet = quiet + 1 if share < idle_share else 0
    return time.monotonic() - began, share


def _stub(channel: grpc.aio.Channel) -> feedback_service_pb2_grpc.FeedbackServiceAsyncStub:
    # The generated stub is typed as sync or async; on an aio channel it is the async one.
    stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
    return cast("feedback_service_pb2_grpc.FeedbackServiceAsyncStub", stub)


def snapshot_request(*, follow: bool, model: str, version: str) -> pb.StreamAggregatesRequest:
    return pb.StreamAggregatesRequest(
        filter=aggregates_pb2.AggregateFilter(project=PROJECT, models=[model], model_versions=[version]),
        group_by=GROUP_BY,
        follow=follow,
    )


@dataclass
class SnapshotResult:
    times_s: list[float]
    groups: int
    feedback_count: int
    server_cpu_s: float

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def cpu_per_call_s(self) -> float:
        return self.server_cpu_s / len(self.times_s)


async def measure_snapshot(
    stub: feedback_service_pb2_grpc.FeedbackServiceAsyncStub,
    pid: int,
    *,
    warmup: int,
    calls: int,
    request: pb.StreamAggregatesRequest | None = None,
) -> SnapshotResult:
    """Median time of non-follow StreamAggregates calls (default: model-3 / v2, by version and key)."""
    if request is None:
        request = snapshot_request(follow=False, model=SNAPSHOT_MODEL, version=SNAPSHOT_VERSION)
    times: list[float] = []
    groups = count = 0
    cpu_before = 0.0
    for call in range(warmup + calls):
        if call == warmup:
            cpu_before = server_cpu_s(pid)
        began = time.perf_counter()
        groups = count = 0
        async for message in stub.StreamAggregates(request, timeout=120, metadata=AUTH):
            if message.HasField("group"):
                groups += 1
                count += message.group.stats.count
            elif message.HasField("snapshot_complete"):
                break
        if call >= warmup:
            times.append(time.perf_counter() - began)
    return SnapshotResult(times, groups, count, server_cpu_s(pid) - cpu_before)


@dataclass
class FreshnessResult:
    delays_s: list[float]
    ack_s: list[float]
    timeouts: int
    baseline_cpu_share: float  # server CPU (cores) with no stream open and nothing written
    idle_cpu_share: float  # server CPU (cores) while one follow stream is open and nothing is written

    @property
    def p50_s(self) -> float:
        return percentile(self.delays_s, 0.50)

    @property
    def p99_s(self) -> float:
        return percentile(self.delays_s, 0.99)


@dataclass
class _FollowState:
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    arrivals: dict[tuple[str, str], float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    snapshot_done: asyncio.Event = field(default_factory=asyncio.Event)


async def _read_follow(call: Any, state: _FollowState) -> None:
    async for message in call:
        now = time.perf_counter()
        if message.HasField("group"):
            group = message.group
            group_key = (group.key.model_version, group.key.key)
            if state.counts.get(group_key) != group.stats.count:
                state.counts[group_key] = group.stats.count
                state.arrivals[group_key] = now
                state.changed.set()
        elif message.HasField("snapshot_complete"):
            state.snapshot_done.set()


async def measure_freshness(
    stub: feedback_service_pb2_grpc.FeedbackServiceAsyncStub, pid: int, *, samples: int, idle_s: float
) -> FreshnessResult:
    rng = random.Random(7)  # noqa: S311  (synthetic data, not security)
    state = _FollowState()
    group_key = (FOLLOW_VERSION, "thumbs")
    delays: list[float] = []
    acks: list[float] = []
    timeouts = 0
    baseline_share = await cpu_share(pid, idle_s)
    call = stub.StreamAggregates(
        snapshot_request(follow=True, model=FOLLOW_MODEL, version=FOLLOW_VERSION), metadata=AUTH
    )
    reader = asyncio.create_task(_read_follow(call, state))
    try:
        await asyncio.wait_for(state.snapshot_done.wait(), 120)
        idle_share = await cpu_share(pid, idle_s)
        for _ in range(samples):
            expected = state.counts.get(group_key, 0) + 1
            feedback = feedback_pb2.Feedback(
                feedback_id=str(uuid.uuid4()),
                project=PROJECT,
                trace_id=uuid.uuid4().hex,
                model=FOLLOW_MODEL,
                model_version=FOLLOW_VERSION,
                key="thumbs",
                thumb=feedback_pb2.THUMB_UP if rng.random() < 0.72 else feedback_pb2.THUMB_DOWN,
                source=feedback_pb2.SOURCE_USER,
                author=f"user-{rng.randrange(USERS)}",
                metadata={"app_version": "3.2.1", "platform": "web"},
            )
            began = time.perf_counter()
            await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=feedback), timeout=30, metadata=AUTH)
            acked = time.perf_counter()
            acks.append(acked - began)
            deadline = acked + FRESHNESS_TIMEOUT_S
            while state.counts.get(group_key, 0) < expected and (left := deadline - time.perf_counter()) > 0:
                state.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(state.changed.wait(), left)
            if state.counts.get(group_key, 0) >= expected:
                delays.append(max(0.0, state.arrivals[group_key] - acked))
            else:
                timeouts += 1
                delays.append(FRESHNESS_TIMEOUT_S)
            # Users do not click in lock-step with the server's refresh cycle.
            await asyncio.sleep(rng.uniform(0.0, 0.25))
    finally:
        call.cancel()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await reader
    return FreshnessResult(delays, acks, timeouts, baseline_share, idle_share)


@dataclass
class ExportResult:
    chunk_size: int
    records: int
    seconds: float
    chunks: int
    first_chunk_bytes: int
    capped_by_time: bool
    server_cpu_s: float
    client_cpu_s: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


async def measure_export(
    stub: feedback_service_pb2_grpc.FeedbackServiceAsyncStub, pid: int, *, chunk_size: int, limit: int, budget_s: float
) -> ExportResult:
    request = pb.ExportFeedbackRequest(filter=aggregates_pb2.AggregateFilter(project=PROJECT), chunk_size=chunk_size)
    records = chunks = first_bytes = 0
    touched = 0
    capped = False
    cpu_before, client_before = server_cpu_s(pid), time.process_time()
    began = time.perf_counter()
    call = stub.ExportFeedback(request, metadata=AUTH)
    try:
        async for response in call:
            if not chunks:
                first_bytes = response.ByteSize()
            chunks += 1
            for record in response.feedback:  # a consumer reads every record
                touched += len(record.feedback_id) + record.create_time.seconds % 2
            records += len(response.feedback)
            if records >= limit:
                break
            if time.perf_counter() - began > budget_s:
                capped = True
                break
    finally:
        call.cancel()
    seconds = time.perf_counter() - began
    assert touched > 0 or records == 0
    return ExportResult(
        chunk_size,
        records,
        seconds,
        chunks,
        first_bytes,
        capped,
        server_cpu_s(pid) - cpu_before,
        time.process_time() - client_before,
    )


# =====================================================================================================
# The run.
# =====================================================================================================


@dataclass
class SizeResult:
    rows: int
    load_s: float
    after_load: dict[str, Any]
    after_run: dict[str, Any]
    snapshot: SnapshotResult
    freshness: FreshnessResult | None
    exports: list[ExportResult]
    other_load: float  # cores used by processes other than the server and this one while measuring


@dataclass
class Options:
    sizes: list[int]
    snapshot_warmup: int
    snapshot_calls: int
    freshness_samples: int
    freshness_at: str  # "each" or "largest"
    idle_s: float
    export_chunks: list[int]
    export_records: int
    export_seconds: float
    settle_s: float
    merge_wait_s: float
    data_dir: Path | None
    markdown: Path | None
    quick: bool


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


async def run_size(options: Options, data_dir: Path, rows: int, loaded: int, window_end_us: int) -> SizeResult:
    log(f"loading {rows - loaded:,} rows into feedback ({loaded:,} stored) ...")
    after_load = storage(data_dir, "load", loaded, rows - loaded, window_end_us, options.merge_wait_s)
    load_s = float(after_load["load_s"])
    log(
        f"loaded in {load_s:.1f} s ({(rows - loaded) / load_s:,.0f} rows/s): feedback "
        f"{after_load['feedback_rows_inserted']:,} rows in {_parts(after_load['feedback_parts_inserted'])}, "
        f"feedback_rollups {after_load['feedback_rollups_rows_inserted']:,} rows in "
        f"{_parts(after_load['feedback_rollups_parts_inserted'])}"
    )
    log(
        f"background merges quiet after {after_load['merge_wait_s']:.0f} s (no OPTIMIZE): feedback "
        f"{after_load['feedback_rows']:,} rows in {_parts(after_load['feedback_parts'])}, feedback_rollups "
        f"{after_load['feedback_rollups_rows']:,} rows in {_parts(after_load['feedback_rollups_parts'])}"
    )
    server = ServerProcess(data_dir, log_path=data_dir.parent / f"server-{rows}.log")
    freshness: FreshnessResult | None = None
    exports: list[ExportResult] = []
    async with server:
        waited, share = await settle(server.pid, options.settle_s)
        log(
            f"server pid {server.pid} on {server.target}; settled {waited:.0f} s (until idle for 3 s, at most "
            f"{options.settle_s:.0f} s): {share:.0%} of a core in the last second"
        )
        machine_before, ours_before = machine_busy_s(), server_cpu_s(server.pid) + time.process_time()
        measuring_since = time.monotonic()
        channel_options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
        async with grpc.aio.insecure_channel(server.target, options=channel_options) as channel:
            stub = _stub(channel)
            snapshot = await measure_snapshot(
                stub, server.pid, warmup=options.snapshot_warmup, calls=options.snapshot_calls
            )
            log(
                f"snapshot: median {snapshot.median_s * 1000:.1f} ms (min {min(snapshot.times_s) * 1000:.1f}, "
                f"max {max(snapshot.times_s) * 1000:.1f}) over {len(snapshot.times_s)} calls; {snapshot.groups} "
                f"groups, {snapshot.feedback_count:,} feedback; server CPU "
                f"{snapshot.cpu_per_call_s * 1000:.0f} ms per snapshot"
            )
            if options.freshness_at == "each" or rows == max(options.sizes):
                freshness = await measure_freshness(
                    stub, server.pid, samples=options.freshness_samples, idle_s=options.idle_s
                )
                log(
                    f"freshness: p50 {freshness.p50_s * 1000:.0f} ms, p99 {freshness.p99_s * 1000:.0f} ms, "
                    f"max {max(freshness.delays_s) * 1000:.0f} ms over {len(freshness.delays_s)} samples "
                    f"({freshness.timeouts} timeouts); CreateFeedback ack p50 "
                    f"{percentile(freshness.ack_s, 0.5) * 1000:.0f} ms; server CPU with nothing written: "
                    f"{freshness.baseline_cpu_share:.0%} of a core without a stream, {freshness.idle_cpu_share:.0%} "
                    "with one follow stream open"
                )
            for chunk_size in options.export_chunks:
                result = await measure_export(
                    stub,
                    server.pid,
                    chunk_size=chunk_size,
                    limit=options.export_records,
                    budget_s=options.export_seconds,
                )
                exports.append(result)
                log(
                    f"export chunk_size {chunk_size:,}: {result.records:,} records in {result.seconds:.1f} s = "
                    f"{result.rate:,.0f} records/s{' (stopped at the time budget)' if result.capped_by_time else ''}"
                    f"; {result.chunks} chunks, first {result.first_chunk_bytes / 1e6:.2f} MB; CPU server "
                    f"{result.server_cpu_s:.1f} s, client {result.client_cpu_s:.1f} s"
                )
        ours = server_cpu_s(server.pid) + time.process_time() - ours_before
        other_load = max(0.0, machine_busy_s() - machine_before - ours) / (time.monotonic() - measuring_since)
        log(f"other processes on this machine used {other_load:.2f} cores on average while measuring")
        exit_code = await server.terminate_async(timeout_s=120)
        if exit_code != 0:
            raise RuntimeError(f"server exited with {exit_code}; log: {server.log_path}")
    after_run = storage(data_dir, "stats")
    log(
        f"after the run: feedback_rollups {after_run['feedback_rollups_rows']:,} rows in "
        f"{_parts(after_run['feedback_rollups_parts'])}; feedback {_parts(after_run['feedback_parts'])}"
    )
    return SizeResult(rows, load_s, after_load, after_run, snapshot, freshness, exports, other_load)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment_lines() -> list[str]:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    from google.protobuf.internal import api_implementation  # noqa: PLC0415

    import feedback_service  # noqa: PLC0415

    service_dir = Path(feedback_service.__file__).resolve().parent

    return [
        f"date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"machine: {os.cpu_count()} cores ({cpu}), {memory} RAM, {platform.system()} {platform.release()}",
        f"python {platform.python_version()}, grpcio {_version('grpcio')}, protobuf {_version('protobuf')} "
        f"({api_implementation.Type()}), clickhouse-connect {_version('clickhouse-connect')}, "
        f"chdb {_version('chdb')}",
        f"service: {service_dir} at {_git_revision(service_dir)}",
    ]


def _git_revision(directory: Path) -> str:
    """Commit of the checkout holding ``directory``, with a note when its files differ from it."""

    def git(*arguments: str) -> str:
        done = subprocess.run(  # noqa: S603
            ["git", *arguments],  # noqa: S607  (whichever git is on PATH)
            cwd=directory,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    try:
        commit, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "--", ".")
    except (OSError, subprocess.CalledProcessError):
        return "no git checkout"
    return f"commit {commit}" + (" with uncommitted changes" if dirty else "")


def migrated_data_dir(stack: contextlib.ExitStack, parent: Path | None, *, prefix: str) -> Path:
    """``data`` in ``parent`` (an empty one) or in a temporary directory that ``stack`` removes, migrated."""
    if parent is None:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
    else:
        work = parent
        work.mkdir(parents=True, exist_ok=True)
    data_dir = work / "data"
    if data_dir.exists():
        raise SystemExit(f"{data_dir} exists: give an empty --data-dir")
    migrated = run_cli(["migrate", "--data-dir", str(data_dir)], cwd=work)
    if migrated.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{migrated.stderr}")
    return data_dir


def _rows_label(rows: int) -> str:
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows % 1_000 == 0:
        return f"{rows // 1_000}k"
    return f"{rows:,}"


def _parts(count: int) -> str:
    return f"{count} part" if count == 1 else f"{count} parts"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 0.1 else f"{seconds * 1000:,.0f} ms"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def result_rows(results: Sequence[SizeResult]) -> list[tuple[str, str, str, str, str]]:
    """(figure, stored rows, measured, limit, verdict)."""
    table: list[tuple[str, str, str, str, str]] = []
    for result in results:
        snap = result.snapshot
        aggregates = (
            f"{result.after_load['feedback_rollups_rows']:,} aggregate rows in "
            f"{_parts(result.after_load['feedback_rollups_parts'])}"
        )
        table.append(
            (
                f"snapshot median of {len(snap.times_s)} ({aggregates})",
                _rows_label(result.rows),
                _ms(snap.median_s),
                "-",
                "",
            )
        )
        table.append(("  server CPU per snapshot (info)", _rows_label(result.rows), _ms(snap.cpu_per_call_s), "-", ""))
    if len(results) >= 2:
        small, large = results[0], results[-1]
        ratio = large.snapshot.median_s / small.snapshot.median_s
        sizes = f"{_rows_label(large.rows)}/{_rows_label(small.rows)}"
        table.append(
            (
                f"snapshot ratio {sizes}",
                "",
                f"{ratio:.2f}x",
                f"<= {SNAPSHOT_RATIO_LIMIT:g}x",
                _verdict(ratio <= SNAPSHOT_RATIO_LIMIT),
            )
        )
        cpu_ratio = large.snapshot.cpu_per_call_s / max(small.snapshot.cpu_per_call_s, 1e-9)
        table.append((f"  server CPU per snapshot ratio {sizes} (info)", "", f"{cpu_ratio:.2f}x", "-", ""))
    for result in results:
        fresh = result.freshness
        if fresh is None:
            continue
        label = _rows_label(result.rows)
        samples = f" ({len(fresh.delays_s)} samples)"
        table.append(
            (
                f"freshness p50{samples}",
                label,
                _ms(fresh.p50_s),
                f"<= {FRESHNESS_P50_LIMIT_S * 1000:.0f} ms",
                _verdict(fresh.p50_s <= FRESHNESS_P50_LIMIT_S),
            )
        )
        table.append(
            (
                f"freshness p99{samples}",
                label,
                _ms(fresh.p99_s),
                f"<= {FRESHNESS_P99_LIMIT_S * 1000:.0f} ms",
                _verdict(fresh.p99_s <= FRESHNESS_P99_LIMIT_S and not fresh.timeouts),
            )
        )
        table.append(("CreateFeedback ack p50 (info)", label, _ms(percentile(fresh.ack_s, 0.5)), "-", ""))
        table.append(
            (
                f"server CPU, 1 idle follow stream (info; none open: {fresh.baseline_cpu_share:.0%})",
                label,
                f"{fresh.idle_cpu_share:.0%} of a core",
                "-",
                "",
            )
        )
    for result in results:
        for export in result.exports:
            capped = ", time-capped" if export.capped_by_time else ""
            table.append(
                (
                    f"export chunk {export.chunk_size:,} ({export.records:,} rec{capped})",
                    _rows_label(result.rows),
                    f"{export.rate:,.0f} rec/s",
                    f">= {EXPORT_RATE_LIMIT:,.0f} rec/s",
                    _verdict(export.rate >= EXPORT_RATE_LIMIT),
                )
            )
    for result in results:
        table.append(
            (
                "other processes' CPU while measuring (info)",
                _rows_label(result.rows),
                f"{result.other_load:.2f} cores",
                "-",
                "",
            )
        )
    return table


HEADERS = ("figure", "stored rows", "measured", "limit", "result")


def text_table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in [HEADERS, *rows]) for i in range(len(HEADERS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in [HEADERS, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def markdown_table(rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


async def run(options: Options) -> int:
    header = environment_lines()
    for line in header:
        print(line)
    print(f"sizes: {', '.join(f'{rows:,}' for rows in options.sizes)} stored feedback rows", flush=True)
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        data_dir = migrated_data_dir(stack, options.data_dir, prefix="feedback-bench-")
        # Every load spreads its rows over the same 7 days, ending 2 minutes before the run.
        window_end_us = int((time.time() - 120) * 1_000_000)
        results: list[SizeResult] = []
        loaded = 0
        for rows in options.sizes:
            results.append(await run_size(options, data_dir, rows, loaded, window_end_us))
            loaded = rows
    table = result_rows(results)
    elapsed = time.monotonic() - began
    print()
    print(text_table(table))
    print(f"\ntotal run time {elapsed / 60:.1f} min{' (--quick)' if options.quick else ''}")
    if options.markdown is not None:
        mode = "--quick" if options.quick else "full"
        text = "\n".join(
            [
                *(f"- {line}" for line in header),
                f"- run: `{' '.join(['bench/evaluation_bench.py', *sys.argv[1:]])}` ({mode}, {elapsed / 60:.1f} min)",
                "",
                markdown_table(table),
                "",
            ]
        )
        options.markdown.write_text(text)
    verdicts = [row[4] for row in table if row[4] in ("PASS", "MISS")]
    return 0 if all(verdict == "PASS" for verdict in verdicts) else 1


def parse_options(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(
        description="Benchmark StreamAggregates snapshots and freshness and ExportFeedback against the real server.",
    )
    parser.add_argument("--rows", help="comma-separated stored-row counts, ascending (default 1000000,10000000)")
    parser.add_argument("--quick", action="store_true", help="100k and 1M rows, fewer samples (< 3 min)")
    parser.add_argument("--snapshot-calls", type=int, help="measured snapshot calls per size (default 7, quick 5)")
    parser.add_argument("--freshness-samples", type=int, help="create-to-push samples (default 100, quick 30)")
    parser.add_argument(
        "--freshness-at", choices=("each", "largest"), default="each", help="measure freshness at each size or once"
    )
    parser.add_argument("--export-records", type=int, help="stop an export after this many (default 1000000)")
    parser.add_argument("--export-seconds", type=float, help="stop an export after this long (default 60, quick 15)")
    parser.add_argument(
        "--settle-s", type=float, help="most to wait for the server to go idle after start (default 60, quick 20)"
    )
    parser.add_argument(
        "--merge-wait-s",
        type=float,
        help="after a load, most to wait for the engine's background merges to go quiet (default 300, quick 60)",
    )
    parser.add_argument("--data-dir", type=Path, help="work dir to keep (default: a temp dir, removed)")
    parser.add_argument("--markdown", type=Path, help="also write the results as a markdown table here")
    arguments = parser.parse_args(argv)
    quick: bool = arguments.quick
    default_rows = "100000,1000000" if quick else "1000000,10000000"
    sizes = [int(part.replace("_", "")) for part in (arguments.rows or default_rows).split(",") if part.strip()]
    if not sizes or sizes != sorted(set(sizes)) or sizes[0] <= 0:
        parser.error("--rows must be positive counts in ascending order")
    return Options(
        sizes=sizes,
        snapshot_warmup=2,
        snapshot_calls=arguments.snapshot_calls or (5 if quick else 7),
        freshness_samples=arguments.freshness_samples or (30 if quick else 100),
        freshness_at=arguments.freshness_at,
        idle_s=2.0 if quick else 5.0,
        export_chunks=[1000, 10_000],
        export_records=arguments.export_records or 1_000_000,
        export_seconds=arguments.export_seconds or (15.0 if quick else 60.0),
        settle_s=arguments.settle_s if arguments.settle_s is not None else (20.0 if quick else 60.0),
        merge_wait_s=arguments.merge_wait_s if arguments.merge_wait_s is not None else (60.0 if quick else 300.0),
        data_dir=arguments.data_dir,
        markdown=arguments.markdown,
        quick=quick,
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["_storage"]:
        _storage_main(arguments[1:])
        return 0
    return asyncio.run(run(parse_options(arguments)))


if __name__ == "__main__":
    sys.exit(main())
