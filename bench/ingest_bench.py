"""Ingest speed of the feedback service beside the limits of gRPC (L1) and of storage (L2).

Run from the repository root (see bench/README.md):

    .venv/bin/python bench/ingest_bench.py            # ~12 s per measurement, ~4-5 min; writes bench/RESULTS.md
    .venv/bin/python bench/ingest_bench.py --quick    # ~3 s per measurement, ~2 min; writes no file
    .venv/bin/python bench/ingest_bench.py --seconds 20 --results /tmp/results.md

Every server and every client is a process of its own; this process only starts them, reads /proc
and waits. Everything runs on the embedded engine in a temporary directory.

- L2, storage: ``bench/ingest_limits.py storage`` inserts the service's own rows straight into the
  ``feedback`` table of a freshly migrated data dir (with its materialized views), 1,000, 10,000 and
  100,000 rows per insert, one insert after another.
- L1, gRPC: ``bench/ingest_limits.py echo``, a grpc.aio FeedbackService that only echoes, driven by
  the same client processes as the service: 64 concurrent CreateFeedback callers, and 1,000-item
  BatchCreateFeedback calls, 4 in flight per client process, from 1, 2 and 4 processes.
- The service: ``python -m feedback_service serve`` (tests/support's ServerProcess: auth on, the
  bootstrap admin key sent by every client; the per-credential rate limit off, since it would cap
  one key at 10,000 events/s), a fresh server on a fresh data dir for each measurement:
  1. CreateFeedback, 64 concurrent callers in one client process: calls/s and p50/p99 latency.
  2. BatchCreateFeedback, 1,000-item batches, 4 in flight from one client process; and the SDK's
     background batching (FeedbackClient.log, default BatchingOptions, then flush): events/s, and
     the server's CPU per 1,000 events (from /proc, less sensitive to noise than a rate).
  5. The server's peak RSS (VmHWM) during scenario 2.
  6. Scenario 2's BatchCreateFeedback load from 1, 2 and 4 client processes at once.

Each client process counts what completes in a common wall-clock window after a warm-up. The exit
code is 0 only when every target passes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make `tests.support` importable
    sys.path.insert(0, str(REPO_ROOT))

from evaluation_bench import environment_lines, percentile  # noqa: E402
from ingest_workload import cpu_s, machine_busy_s, peak_rss_bytes, reset_peak_rss  # noqa: E402

from tests.support.auth import ADMIN_KEY  # noqa: E402
from tests.support.server_process import ServerProcess, child_environment  # noqa: E402

# --- the targets of the performance issue -----------------------------------------------------------------
SINGLE_RATIO_TARGET = 0.70  # CreateFeedback calls/s >= 70% of L1 single-item echo
SINGLE_P99_TARGET_MS = 50.0
BATCH_RATIO_TARGET = 0.60  # events/s >= 60% of min(L1 batch echo, L2 insert)
BATCH_RATE_TARGET = 150_000.0  # events/s
PEAK_RSS_TARGET_BYTES = 1_500_000_000  # 1.5 GB

# --- the load ---------------------------------------------------------------------------------------------
SINGLE_CALLERS = 64
BATCH_IN_FLIGHT = 4  # per client process
SCALING_PROCESSES = (1, 2, 4)
L2_ROWS_PER_INSERT = (1_000, 10_000, 100_000)
L2_LIMIT_ROWS_PER_INSERT = 10_000  # the service's micro-batcher puts at most 10,000 rows in one insert
# The service as deployed, except the per-credential rate limit (10,000 units/s by default) that would
# throttle the one bootstrap key every client uses.
SERVER_ARGS = ("--rate-limit-per-s", "0")
CLIENT_START_S = 2.5  # allowance for a client process to start (imports, channel) before its warm-up

CLIENT_SCRIPT = BENCH_DIR / "ingest_client.py"
LIMITS_SCRIPT = BENCH_DIR / "ingest_limits.py"


@dataclass
class Options:
    seconds: float
    warmup_s: float
    l2_seconds: float
    settle_s: float
    quick: bool
    results: Path | None
    keep: Path | None


@dataclass
class Measurement:
    """One measured window: what the client processes counted, and the CPU of everyone meanwhile."""

    name: str
    processes: int
    events: int
    seconds: float
    calls: int
    errors: int
    server_cpu_s: float
    client_cpu_s: float
    other_cores: float
    latencies_ms: list[float] = field(default_factory=list)
    late_s: float = 0.0
    peak_rss_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def server_cpu_per_1000_ms(self) -> float:
        return self.server_cpu_s / max(self.events, 1) * 1_000_000


@dataclass
class Results:
    l1_single: Measurement
    l1_batch: dict[int, Measurement]  # by client processes
    l2: dict[int, dict[str, Any]]  # by rows per insert
    single: Measurement
    batch: dict[int, Measurement]  # by client processes
    sdk: Measurement

    @property
    def batch_limit(self) -> tuple[float, str]:
        l1 = self.l1_batch[1].rate
        variants = self.l2[L2_LIMIT_ROWS_PER_INSERT]["variants"]
        best = max(variants, key=lambda name: variants[name]["rows_per_s"])
        l2 = float(variants[best]["rows_per_s"])
        return (l1, "L1 batch echo") if l1 <= l2 else (l2, f"L2 {L2_LIMIT_ROWS_PER_INSERT:,}-row inserts, {best}")


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# ---- processes -------------------------------------------------------------------------------------------


def drive(
    options: Options,
    *,
    name: str,
    server_pid: int,
    target: str,
    mode: str,
    project: str,
    processes: int = 1,
    concurrency: int | None = None,
    logs: Path,
) -> Measurement:
    """Run ``processes`` client processes against ``target`` and measure one common window."""
    start_at = time.time() + CLIENT_START_S + options.warmup_s
    arguments = ["--target", target, "--mode", mode, "--start-at", f"{start_at:.3f}"]
    arguments += ["--seconds", str(options.seconds)]
    if concurrency is not None:
        arguments += ["--concurrency", str(concurrency)]
    environment = child_environment({"BENCH_API_KEY": ADMIN_KEY})
    clients: list[subprocess.Popen[str]] = []
    try:
        for number in range(processes):
            with (logs / f"client-{project}-{number}.log").open("w") as stderr:
                clients.append(
                    subprocess.Popen(  # noqa: S603  (our interpreter and script)
                        [sys.executable, str(CLIENT_SCRIPT), *arguments, "--project", project],
                        stdout=subprocess.PIPE,
                        stderr=stderr,
                        env=environment,
                        text=True,
                    )
                )
        time.sleep(max(0.0, start_at - time.time()))
        server_before, machine_before = cpu_s(server_pid), machine_busy_s()
        time.sleep(max(0.0, start_at + options.seconds - time.time()))
        server_used, machine_used = cpu_s(server_pid) - server_before, machine_busy_s() - machine_before
        reports = []
        for client in clients:
            out, _ = client.communicate(timeout=options.seconds + 300)
            if client.returncode != 0:
                raise RuntimeError(f"client of {name} exited with {client.returncode}; see {logs}")
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.wait()
    client_cpu = sum(float(report["cpu_s"]) for report in reports)
    extra = _sdk_stats(reports)
    measurement = Measurement(
        name=name,
        processes=processes,
        events=sum(int(report["events"]) for report in reports),
        seconds=options.seconds,
        calls=sum(int(report["calls"]) for report in reports),
        errors=sum(int(report["errors"]) for report in reports),
        server_cpu_s=server_used,
        client_cpu_s=client_cpu,
        other_cores=max(0.0, machine_used - server_used - client_cpu) / options.seconds,
        latencies_ms=[latency for report in reports for latency in report["latencies_ms"]],
        late_s=max(float(report["late_s"]) for report in reports),
        extra=extra,
    )
    latency = ""
    if measurement.latencies_ms:
        latency = (
            f", p50 {percentile(measurement.latencies_ms, 0.5):.1f} ms, "
            f"p99 {percentile(measurement.latencies_ms, 0.99):.1f} ms"
        )
    log(
        f"{name}: {measurement.rate:,.0f} {'calls' if mode == 'single' else 'events'}/s{latency}; CPU cores: "
        f"server {server_used / options.seconds:.2f}, clients {client_cpu / options.seconds:.2f}, other "
        f"{measurement.other_cores:.2f}; server CPU {measurement.server_cpu_per_1000_ms:.0f} ms per 1,000 events"
        + (f"; {measurement.errors} errors" if measurement.errors else "")
        + (f"; a client started {measurement.late_s:.1f} s late (no warm-up)" if measurement.late_s else "")
        + (f"; SDK {extra}" if mode == "sdk" else "")
    )
    if measurement.errors:
        raise RuntimeError(f"{name}: {measurement.errors} calls or items failed; see {logs}")
    return measurement


def _sdk_stats(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The SDK's BatchStats of the client processes, summed (empty for other modes)."""
    stats: dict[str, Any] = {}
    for report in reports:
        for key in ("logged", "sent", "dropped", "blocked", "retries", "flush_s"):
            if key in report:
                stats[key] = stats.get(key, 0) + report[key]
        if "flushed" in report:
            stats["flushed"] = stats.get("flushed", True) and report["flushed"]
    return stats


@contextlib.contextmanager
def echo_server() -> Iterator[tuple[int, str]]:
    """L1: the echo server as a process; yields (pid, target)."""
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, str(LIMITS_SCRIPT), "echo"],
        stdout=subprocess.PIPE,
        env=child_environment(),
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(json.loads(process.stdout.readline())["port"])
        yield process.pid, f"127.0.0.1:{port}"
        process.send_signal(signal.SIGTERM)
        if process.wait(timeout=30) != 0:
            raise RuntimeError(f"echo server exited with {process.returncode}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def migrate(data_dir: Path) -> None:
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "feedback_service", "migrate", "--data-dir", str(data_dir)],
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{done.stderr[-4000:]}")


def measure_storage(options: Options, work: Path, rows_per_insert: int) -> dict[str, Any]:
    """L2 on a fresh, migrated data dir, in a process of its own."""
    data_dir = work / f"l2-{rows_per_insert}"
    migrate(data_dir)
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(LIMITS_SCRIPT), "storage", str(data_dir), str(rows_per_insert), str(options.l2_seconds)],
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=options.l2_seconds + 600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"L2 with {rows_per_insert:,}-row inserts failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["stored_rows"] != result["expected_rows"]:
        raise RuntimeError(f"L2 stored {result['stored_rows']:,} rows of {result['expected_rows']:,}")
    variants = "; ".join(
        f"{name} settings {variant['rows_per_s']:,.0f} rows/s ({variant['inserts']} inserts, "
        f"{_ms_per_insert(variant)} ms each)"
        for name, variant in result["variants"].items()
    )
    log(
        f"L2 insert, {rows_per_insert:,} rows per insert: {variants}; CPU {result['cpu_cores']:.2f} cores, "
        f"{result['cpu_s_per_1000'] * 1000:.0f} ms per 1,000 rows; other {result['other_cores']:.2f} cores"
    )
    shutil.rmtree(data_dir, ignore_errors=True)
    return result


def _ms_per_insert(variant: dict[str, Any]) -> str:
    return f"{variant['insert_s'] / max(variant['inserts'], 1) * 1000:.0f}"


def settle(pid: int, max_s: float, idle_cores: float = 0.1) -> None:
    """Wait until the server uses < ``idle_cores`` for 2 s in a row (start-up done), at most ``max_s``."""
    began, quiet = time.monotonic(), 0
    while quiet < 2 and time.monotonic() - began < max_s:
        before = cpu_s(pid)
        time.sleep(1.0)
        quiet = quiet + 1 if cpu_s(pid) - before < idle_cores else 0


def on_service(options: Options, work: Path, label: str, **load: Any) -> Measurement:
    """A fresh server on a fresh data dir, one measurement, the server's peak RSS during it."""
    data_dir = work / f"service-{label}"
    server = ServerProcess(data_dir, extra_args=SERVER_ARGS, log_path=work / f"server-{label}.log")
    with server:
        settle(server.pid, options.settle_s)
        reset_peak_rss(server.pid)
        measurement = drive(options, server_pid=server.pid, target=server.target, logs=work, **load)
        measurement.peak_rss_bytes = peak_rss_bytes(server.pid)
        exit_code = server.terminate(timeout_s=120)
        if exit_code != 0:
            raise RuntimeError(f"server exited with {exit_code}; log: {server.log_path}")
    shutil.rmtree(data_dir, ignore_errors=True)
    return measurement


def run_all(options: Options, work: Path) -> Results:
    l2 = {rows: measure_storage(options, work, rows) for rows in L2_ROWS_PER_INSERT}
    with echo_server() as (pid, target):
        l1_single = drive(
            options,
            name="L1 single-item echo, 64 callers",
            server_pid=pid,
            target=target,
            mode="single",
            project="ingest-l1-single",
            concurrency=SINGLE_CALLERS,
            logs=work,
        )
        l1_batch = {
            processes: drive(
                options,
                name=f"L1 batch echo, {_processes(processes)} x {BATCH_IN_FLIGHT} in flight",
                server_pid=pid,
                target=target,
                mode="batch",
                project="ingest-l1-batch",
                processes=processes,
                concurrency=BATCH_IN_FLIGHT,
                logs=work,
            )
            for processes in SCALING_PROCESSES
        }
    single = on_service(
        options,
        work,
        "single",
        name="1. CreateFeedback, 64 callers",
        mode="single",
        project="ingest-s1-single",
        concurrency=SINGLE_CALLERS,
    )
    batch = {
        processes: on_service(
            options,
            work,
            f"batch-{processes}",
            name=f"{'2' if processes == 1 else '6'}. BatchCreateFeedback, {_processes(processes)} x "
            f"{BATCH_IN_FLIGHT} in flight",
            mode="batch",
            project=f"ingest-s2-batch-{processes}",
            processes=processes,
            concurrency=BATCH_IN_FLIGHT,
        )
        for processes in SCALING_PROCESSES
    }
    sdk = on_service(
        options, work, "sdk", name="2. SDK FeedbackClient.log + flush", mode="sdk", project="ingest-s2-sdk"
    )
    return Results(l1_single, l1_batch, l2, single, batch, sdk)


# ---- the tables ------------------------------------------------------------------------------------------

TARGET_HEADERS = ("figure", "service", "limit", "ratio", "target", "result")
LIMIT_HEADERS = ("limit", "measured", "per call", "CPU per 1,000 events", "CPU cores", "other load (cores)")
DETAIL_HEADERS = (
    "measurement",
    "rate",
    "per call",
    "server CPU per 1,000 events",
    "CPU cores: server / clients / other",
    "server peak RSS",
)


def _processes(count: int) -> str:
    return f"{count} client process" if count == 1 else f"{count} client processes"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _per_s(value: float, unit: str = "events/s") -> str:
    return f"{value:,.0f} {unit}"


def _gb(size: int) -> str:
    return f"{size / 1e9:.2f} GB"


def target_rows(results: Results) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    single, l1 = results.single, results.l1_single
    ratio = single.rate / l1.rate
    rows.append(
        (
            "1. CreateFeedback calls/s, 64 concurrent callers",
            _per_s(single.rate, "calls/s"),
            f"{_per_s(l1.rate, 'calls/s')} (L1 echo)",
            f"{ratio:.0%}",
            f">= {SINGLE_RATIO_TARGET:.0%} of L1",
            _verdict(ratio >= SINGLE_RATIO_TARGET),
        )
    )
    p50, p99 = percentile(single.latencies_ms, 0.5), percentile(single.latencies_ms, 0.99)
    l1_p50, l1_p99 = percentile(l1.latencies_ms, 0.5), percentile(l1.latencies_ms, 0.99)
    rows.append(("1. CreateFeedback latency p50", f"{p50:.1f} ms", f"{l1_p50:.1f} ms (L1 echo)", "", "-", ""))
    rows.append(
        (
            "1. CreateFeedback latency p99",
            f"{p99:.1f} ms",
            f"{l1_p99:.1f} ms (L1 echo)",
            "",
            f"<= {SINGLE_P99_TARGET_MS:.0f} ms",
            _verdict(p99 <= SINGLE_P99_TARGET_MS),
        )
    )
    limit, limit_name = results.batch_limit
    for label, measurement in (
        ("2. BatchCreateFeedback events/s, 1,000-item batches, 4 in flight", results.batch[1]),
        ("2. SDK log() + flush events/s, default BatchingOptions", results.sdk),
    ):
        ratio = measurement.rate / limit
        rows.append(
            (
                label,
                _per_s(measurement.rate),
                f"{_per_s(limit)} ({limit_name})",
                f"{ratio:.0%}",
                f">= {BATCH_RATIO_TARGET:.0%} of min(L1, L2)",
                _verdict(ratio >= BATCH_RATIO_TARGET),
            )
        )
        rows.append(
            (
                f"{label.split(' events/s')[0]}: absolute",
                _per_s(measurement.rate),
                "",
                "",
                f">= {BATCH_RATE_TARGET:,.0f} events/s",
                _verdict(measurement.rate >= BATCH_RATE_TARGET),
            )
        )
    batch, echo = results.batch[1], results.l1_batch[1]
    rows.append(
        (
            "2. server CPU per 1,000 events (BatchCreateFeedback)",
            f"{batch.server_cpu_per_1000_ms:.0f} ms",
            f"{echo.server_cpu_per_1000_ms:.0f} ms (L1 echo server)",
            f"{batch.server_cpu_per_1000_ms / echo.server_cpu_per_1000_ms:.1f}x",
            "-",
            "",
        )
    )
    rows.append(
        (
            "2. server CPU per 1,000 events (SDK)",
            f"{results.sdk.server_cpu_per_1000_ms:.0f} ms",
            "",
            "",
            "-",
            "",
        )
    )
    peak = max(results.batch[1].peak_rss_bytes, results.sdk.peak_rss_bytes)
    rows.append(
        (
            "5. server peak RSS (VmHWM) during scenario 2",
            _gb(peak),
            "",
            "",
            f"<= {_gb(PEAK_RSS_TARGET_BYTES)}",
            _verdict(peak <= PEAK_RSS_TARGET_BYTES),
        )
    )
    for processes in SCALING_PROCESSES:
        measurement, echo = results.batch[processes], results.l1_batch[processes]
        rows.append(
            (
                f"6. BatchCreateFeedback events/s, {_processes(processes)}",
                _per_s(measurement.rate),
                f"{_per_s(echo.rate)} (L1 echo, {processes} proc.)",
                f"{measurement.rate / echo.rate:.0%}",
                "-",
                "",
            )
        )
    return rows


def _batch_call_ms(measurement: Measurement) -> float:
    """Mean duration of a batch call: the window times the calls in flight, over the calls completed."""
    in_flight = measurement.processes * BATCH_IN_FLIGHT
    return measurement.seconds * in_flight / max(measurement.calls, 1) * 1000


def limit_rows(results: Results) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    l1 = results.l1_single
    rows.append(
        (
            "L1 single-item echo, 64 callers, 1 client process",
            _per_s(l1.rate, "calls/s"),
            f"p50 {percentile(l1.latencies_ms, 0.5):.1f} ms",
            f"{l1.server_cpu_per_1000_ms:.0f} ms",
            f"{l1.server_cpu_s / l1.seconds:.2f}",
            f"{l1.other_cores:.2f}",
        )
    )
    for processes, echo in results.l1_batch.items():
        rows.append(
            (
                f"L1 1,000-item batch echo, {_processes(processes)} x {BATCH_IN_FLIGHT} in flight",
                _per_s(echo.rate),
                f"{_batch_call_ms(echo):.0f} ms",
                f"{echo.server_cpu_per_1000_ms:.0f} ms",
                f"{echo.server_cpu_s / echo.seconds:.2f}",
                f"{echo.other_cores:.2f}",
            )
        )
    for rows_per_insert, storage in results.l2.items():
        for name, variant in storage["variants"].items():
            rows.append(
                (
                    f"L2 insert into feedback, {rows_per_insert:,} rows per insert, {name} settings",
                    _per_s(variant["rows_per_s"], "rows/s"),
                    f"{_ms_per_insert(variant)} ms",
                    f"{storage['cpu_s_per_1000'] * 1000:.0f} ms",
                    f"{storage['cpu_cores']:.2f}",
                    f"{storage['other_cores']:.2f}",
                )
            )
    return rows


def detail_rows(results: Results) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    measurements = [results.l1_single, *results.l1_batch.values(), results.single, *results.batch.values()]
    for measurement in [*measurements, results.sdk]:
        unit = "calls/s" if measurement.latencies_ms else "events/s"
        rss = _gb(measurement.peak_rss_bytes) if measurement.peak_rss_bytes else "-"
        if measurement.latencies_ms:
            per_call = f"p50 {percentile(measurement.latencies_ms, 0.5):.1f} ms"
        elif measurement is results.sdk:  # one batch in flight: a batch takes 1,000 items' time
            per_call = f"{1000 / max(measurement.rate, 1e-9) * 1000:.0f} ms"
        else:
            per_call = f"{_batch_call_ms(measurement):.0f} ms"
        rows.append(
            (
                measurement.name,
                _per_s(measurement.rate, unit),
                per_call,
                f"{measurement.server_cpu_per_1000_ms:.0f} ms",
                f"{measurement.server_cpu_s / measurement.seconds:.2f} / "
                f"{measurement.client_cpu_s / measurement.seconds:.2f} / {measurement.other_cores:.2f}",
                rss,
            )
        )
    return rows


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in [headers, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


NOTES = """\
The ratios are the figure of merit: this is a shared, noisy 2-core machine, and the client processes
and the server compete for its cores (the CPU columns show how they split them), so absolute rates
move with whatever else runs. The server's CPU per 1,000 events depends least on that noise.
L1 is a no-op grpc.aio FeedbackService (no auth, validation or storage) driven by the same client
processes; L2 is clickhouse-connect inserting the service's own rows (feedback_service.store.rows)
straight into the migrated `feedback` table and its materialized views on the embedded engine, one
insert after another, alternating default insert settings and the service's tuned ones (the CPU
columns of an insert size cover both); the better 10,000-row figure is the storage limit (the
service's micro-batcher puts at most 10,000 rows in one insert). Each service measurement runs a
fresh server on a fresh data dir, with auth on and the per-credential rate limit off. "per call" is
the p50 latency of single calls, the mean duration of a batch call (window x calls in flight /
calls), and for the SDK, which sends one batch at a time, the time per 1,000 events.
"""


def write_results(path: Path, header: Sequence[str], results: Results, elapsed_s: float, mode: str) -> None:
    text = "\n".join(
        [
            "# Ingest benchmark results",
            "",
            "Written by `bench/ingest_bench.py` (see bench/README.md); do not edit by hand.",
            "",
            *(f"- {line}" for line in header),
            f"- run: `{' '.join(['bench/ingest_bench.py', *sys.argv[1:]])}` ({mode}, {elapsed_s / 60:.1f} min)",
            "",
            "## Targets",
            "",
            markdown_table(TARGET_HEADERS, target_rows(results)),
            "",
            "## Limits",
            "",
            markdown_table(LIMIT_HEADERS, limit_rows(results)),
            "",
            "## Every measurement",
            "",
            markdown_table(DETAIL_HEADERS, detail_rows(results)),
            "",
            NOTES,
        ]
    )
    path.write_text(text)


def run(options: Options) -> int:
    load = os.getloadavg()
    header = [
        *environment_lines(),
        f"load before the run (loadavg 1/5/15 min): {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}",
        f"{options.seconds:g} s per measurement after {options.warmup_s:g} s of warm-up; "
        f"L2 {options.l2_seconds:g} s per insert size",
    ]
    for line in header:
        print(line, flush=True)
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        if options.keep is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="feedback-ingest-bench-")))
        else:
            work = options.keep
            work.mkdir(parents=True, exist_ok=True)
        results = run_all(options, work)
    elapsed = time.monotonic() - began
    targets = target_rows(results)
    print()
    print(text_table(TARGET_HEADERS, targets))
    print()
    print(text_table(LIMIT_HEADERS, limit_rows(results)))
    print()
    print(text_table(DETAIL_HEADERS, detail_rows(results)))
    print(f"\ntotal run time {elapsed / 60:.1f} min{' (--quick)' if options.quick else ''}")
    if options.results is not None:
        write_results(options.results, header, results, elapsed, "--quick" if options.quick else "full")
        print(f"wrote {options.results}")
    verdicts = [row[-1] for row in targets if row[-1]]
    return 0 if all(verdict == "PASS" for verdict in verdicts) else 1


def parse_options(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="~3 s per measurement, for development (~2 min)")
    parser.add_argument("--seconds", type=float, help="length of each measured window (default 12, quick 3)")
    parser.add_argument("--warmup-s", type=float, help="load before each window (default 2, quick 1)")
    parser.add_argument("--l2-seconds", type=float, help="inserting per L2 insert size (default 10, quick 3)")
    parser.add_argument("--settle-s", type=float, help="most to wait for a new server to go idle (default 15)")
    parser.add_argument(
        "--results",
        type=Path,
        help="write the results as markdown here (default bench/RESULTS.md; with --quick, none)",
    )
    parser.add_argument("--keep", type=Path, help="work dir to keep (server and client logs); default a temp dir")
    arguments = parser.parse_args(argv)
    quick: bool = arguments.quick
    results = arguments.results
    if results is None and not quick:
        results = BENCH_DIR / "RESULTS.md"
    return Options(
        seconds=arguments.seconds or (3.0 if quick else 12.0),
        warmup_s=arguments.warmup_s if arguments.warmup_s is not None else (1.0 if quick else 2.0),
        l2_seconds=arguments.l2_seconds or (3.0 if quick else 10.0),
        settle_s=arguments.settle_s if arguments.settle_s is not None else (5.0 if quick else 15.0),
        quick=quick,
        results=results,
        keep=arguments.keep,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_options(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
