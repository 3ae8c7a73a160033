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
  7. Scenarios 1 and 2 (single calls, 1,000-item batches) over the HTTP face as Connect unary calls,
     binary and JSON, beside gRPC's figures of the same run (``--only http`` runs just these and their
     gRPC baselines).

Each client process counts what completes in a common wall-clock window after a warm-up. The exit
code is 0 only when every target passes. The helpers: ingest_limits.py (L1, L2), ingest_client.py (a
client process), ingest_workload.py (the feedback mix, /proc readers), ingest_report.py (the tables).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make `tests.support` importable
    sys.path.insert(0, str(REPO_ROOT))

from evaluation_bench import environment_lines, percentile  # noqa: E402
from ingest_report import (  # noqa: E402
    BATCH_IN_FLIGHT,
    CONNECT_RATIO_TARGETS,
    DETAIL_HEADERS,
    L2_ROWS_PER_INSERT,
    LIMIT_HEADERS,
    SCALING_PROCESSES,
    SINGLE_CALLERS,
    TARGET_HEADERS,
    Measurement,
    Results,
    detail_rows,
    http_rows,
    limit_rows,
    ms_per_insert,
    processes_label,
    target_rows,
    text_table,
    write_results,
)
from ingest_workload import cpu_s, machine_busy_s, peak_rss_bytes, reset_peak_rss  # noqa: E402

from tests.support.auth import ADMIN_KEY  # noqa: E402
from tests.support.server_process import ServerProcess, child_environment  # noqa: E402

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
    only: str = "all"  # "http": scenario 7 and its gRPC baselines only; "write": scenarios 3, 4 and the SDK
    profile: Path | None = None  # py-spy record each service measurement's server into this dir


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
    transport: str = "grpc",
    logs: Path,
) -> Measurement:
    """Run ``processes`` client processes against ``target`` and measure one common window."""
    start_at = time.time() + CLIENT_START_S + options.warmup_s
    arguments = ["--target", target, "--mode", mode, "--start-at", f"{start_at:.3f}", "--transport", transport]
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
        f"{ms_per_insert(variant)} ms each)"
        for name, variant in result["variants"].items()
    )
    log(
        f"L2 insert, {rows_per_insert:,} rows per insert: {variants}; CPU {result['cpu_cores']:.2f} cores, "
        f"{result['cpu_s_per_1000'] * 1000:.0f} ms per 1,000 rows; other {result['other_cores']:.2f} cores"
    )
    shutil.rmtree(data_dir, ignore_errors=True)
    return result


def settle(pid: int, max_s: float, idle_cores: float = 0.1) -> None:
    """Wait until the server uses < ``idle_cores`` for 2 s in a row (start-up done), at most ``max_s``."""
    began, quiet = time.monotonic(), 0
    while quiet < 2 and time.monotonic() - began < max_s:
        before = cpu_s(pid)
        time.sleep(1.0)
        quiet = quiet + 1 if cpu_s(pid) - before < idle_cores else 0


def on_service(options: Options, work: Path, label: str, transport: str = "grpc", **load: Any) -> Measurement:
    """A fresh server on a fresh data dir, one measurement, the server's peak RSS during it. ``transport``
    ``grpc`` drives the gRPC port, ``connect-proto`` and ``connect-json`` the HTTP face."""
    data_dir = work / f"service-{label}"
    server = ServerProcess(data_dir, extra_args=SERVER_ARGS, log_path=work / f"server-{label}.log")
    with server, _profiled(options, server.pid, label):
        settle(server.pid, options.settle_s)
        reset_peak_rss(server.pid)
        target = server.target if transport == "grpc" else server.http_url
        measurement = drive(options, server_pid=server.pid, target=target, transport=transport, logs=work, **load)
        measurement.peak_rss_bytes = peak_rss_bytes(server.pid)
        exit_code = server.terminate(timeout_s=120)
        if exit_code != 0:
            raise RuntimeError(f"server exited with {exit_code}; log: {server.log_path}")
    shutil.rmtree(data_dir, ignore_errors=True)
    return measurement


@contextlib.contextmanager
def _profiled(options: Options, pid: int, label: str) -> Iterator[None]:
    """With ``--profile DIR``: py-spy (``pip install py-spy``) samples the server's busy threads into
    DIR/<label>.txt (collapsed stacks, one line per stack with its sample count)."""
    if options.profile is None:
        yield
        return
    options.profile.mkdir(parents=True, exist_ok=True)
    output = options.profile / f"{label}.txt"
    command = [str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(pid), "-r", "200"]
    command += ["-f", "raw", "-o", str(output), "--nonblocking"]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            spy.wait(timeout=30)


def measure_sequential(options: Options, work: Path) -> Measurement:
    """Scenario 3: one caller, sequential CreateFeedback calls."""
    return on_service(
        options,
        work,
        "sequential",
        name="3. CreateFeedback, one caller, sequential",
        mode="single",
        project="ingest-s3-sequential",
        concurrency=1,
    )


def measure_batch_one(options: Options, work: Path) -> Measurement:
    """Scenario 4: 1,000-item BatchCreateFeedback batches, one in flight."""
    return on_service(
        options,
        work,
        "batch-one",
        name="4. BatchCreateFeedback, 1,000-item batches, 1 in flight",
        mode="batch",
        project="ingest-s4-batch-one",
        concurrency=1,
    )


def measure_sdk(options: Options, work: Path) -> Measurement:
    """Scenario 2's SDK path: FeedbackClient.log, then flush."""
    return on_service(
        options, work, "sdk", name="2. SDK FeedbackClient.log + flush", mode="sdk", project="ingest-s2-sdk"
    )


def run_write_only(options: Options, work: Path) -> list[tuple[str, ...]]:
    """``--only write``: the write-cost scenarios of issue 17 (3, 4 with 1 in flight, the SDK)."""
    rows: list[tuple[str, ...]] = []
    sequential = measure_sequential(options, work)
    rows.append(("3. server CPU per sequential create", f"{sequential.server_cpu_per_1000_ms / 1000:.1f} ms"))
    rows.append(("3. p50 / p99", " / ".join(f"{percentile(sequential.latencies_ms, q):.1f} ms" for q in (0.5, 0.99))))
    batch_one = measure_batch_one(options, work)
    rows.append(("4. 1 in flight: items/s", f"{batch_one.rate:,.0f}"))
    rows.append(("4. 1 in flight: server CPU per 1,000 items", f"{batch_one.server_cpu_per_1000_ms:.0f} ms"))
    sdk = measure_sdk(options, work)
    rows.append(("4. SDK log(): items/s", f"{sdk.rate:,.0f}"))
    rows.append(("4. SDK log(): server CPU per 1,000 items", f"{sdk.server_cpu_per_1000_ms:.0f} ms"))
    return rows


def measure_single(options: Options, work: Path, transport: str = "grpc") -> Measurement:
    """Scenario 1 (and 7 over the HTTP face): CreateFeedback, 64 concurrent callers."""
    suffix = "" if transport == "grpc" else f" over {transport}"
    return on_service(
        options,
        work,
        f"single-{transport}",
        transport=transport,
        name=f"{'1' if transport == 'grpc' else '7'}. CreateFeedback{suffix}, 64 callers",
        mode="single",
        project=f"ingest-s1-single-{transport}",
        concurrency=SINGLE_CALLERS,
    )


def measure_batch(options: Options, work: Path, processes: int = 1, transport: str = "grpc") -> Measurement:
    """Scenario 2 (6 with more processes, 7 over the HTTP face): 1,000-item batches, 4 in flight a process."""
    number = "7" if transport != "grpc" else ("2" if processes == 1 else "6")
    suffix = "" if transport == "grpc" else f" over {transport}"
    return on_service(
        options,
        work,
        f"batch-{processes}-{transport}",
        transport=transport,
        name=f"{number}. BatchCreateFeedback{suffix}, {processes_label(processes)} x {BATCH_IN_FLIGHT} in flight",
        mode="batch",
        project=f"ingest-s2-batch-{processes}-{transport}",
        processes=processes,
        concurrency=BATCH_IN_FLIGHT,
    )


def measure_http(options: Options, work: Path) -> dict[tuple[str, str], Measurement]:
    """Scenario 7: scenarios 1 and 2 over the HTTP face, Connect binary and JSON."""
    http: dict[tuple[str, str], Measurement] = {}
    for transport in CONNECT_RATIO_TARGETS:
        http["single", transport] = measure_single(options, work, transport)
        http["batch", transport] = measure_batch(options, work, 1, transport)
    return http


def run_http_only(options: Options, work: Path) -> list[tuple[str, ...]]:
    """``--only http``: scenario 7 beside the gRPC figures of scenarios 1 and 2, measured in this run."""
    single = measure_single(options, work)
    batch = measure_batch(options, work)
    return http_rows(single, batch, measure_http(options, work))


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
                name=f"L1 batch echo, {processes_label(processes)} x {BATCH_IN_FLIGHT} in flight",
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
    single = measure_single(options, work)
    batch = {processes: measure_batch(options, work, processes) for processes in SCALING_PROCESSES}
    sdk = measure_sdk(options, work)
    sequential = measure_sequential(options, work)
    batch_one = measure_batch_one(options, work)
    http = measure_http(options, work)
    return Results(l1_single, l1_batch, l2, single, batch, sdk, http, sequential, batch_one, measure_floors(work))


def measure_floors(work: Path) -> dict[str, float]:
    """The storage floors of one write (ingest_limits.py floors), on a fresh migrated data dir."""
    data_dir = work / "floors"
    migrate(data_dir)
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(LIMITS_SCRIPT), "floors", str(data_dir)],
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"floors failed:\n{done.stderr[-4000:]}")
    floors: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    log("floors: " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in floors.items()))
    shutil.rmtree(data_dir, ignore_errors=True)
    return floors


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
        if options.only == "http":
            rows = run_http_only(options, work)
            print()
            print(text_table(TARGET_HEADERS, rows))
            print(f"\ntotal run time {(time.monotonic() - began) / 60:.1f} min (--only http)")
            return 0 if all(row[-1] == "PASS" for row in rows if row[-1]) else 1
        if options.only == "write":
            for name, figure in run_write_only(options, work):
                print(f"{name}: {figure}")
            print(f"\ntotal run time {(time.monotonic() - began) / 60:.1f} min (--only write)")
            return 0
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
    parser.add_argument(
        "--only",
        choices=("all", "http", "write"),
        default="all",
        help="http: only scenario 7 (the HTTP face) and its gRPC baselines; write: only scenarios 3, 4 (1 in "
        "flight) and the SDK, the write-cost figures; neither writes a results file",
    )
    parser.add_argument("--profile", type=Path, help="py-spy record each service measurement's server into this dir")
    arguments = parser.parse_args(argv)
    quick: bool = arguments.quick
    results = arguments.results
    if results is None and not quick and arguments.only == "all":
        results = BENCH_DIR / "RESULTS.md"
    return Options(
        seconds=arguments.seconds or (3.0 if quick else 12.0),
        warmup_s=arguments.warmup_s if arguments.warmup_s is not None else (1.0 if quick else 2.0),
        l2_seconds=arguments.l2_seconds or (3.0 if quick else 10.0),
        settle_s=arguments.settle_s if arguments.settle_s is not None else (5.0 if quick else 15.0),
        quick=quick,
        results=results,
        keep=arguments.keep,
        only=arguments.only,
        profile=arguments.profile,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_options(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
