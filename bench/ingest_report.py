"""The tables of bench/ingest_bench.py: targets, limits and every measurement, as text and markdown."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluation_bench import percentile

# --- the targets of the performance issue -----------------------------------------------------------------
SINGLE_RATIO_TARGET = 0.70  # CreateFeedback calls/s >= 70% of L1 single-item echo
SINGLE_P99_TARGET_MS = 50.0
BATCH_RATIO_TARGET = 0.60  # events/s >= 60% of min(L1 batch echo, L2 insert)
BATCH_RATE_TARGET = 150_000.0  # events/s
PEAK_RSS_TARGET_BYTES = 1_500_000_000  # 1.5 GB
# The HTTP face (scenario 7): the same loads as Connect unary calls, beside gRPC's rate in the same run.
CONNECT_RATIO_TARGETS = {"connect-proto": 0.70, "connect-json": 0.50}
TRANSPORT_LABELS = {"grpc": "gRPC", "connect-proto": "Connect binary", "connect-json": "Connect JSON"}

# The write-cost targets (scenarios 3 and 4): one caller's sequential creates, and bulk ingest.
SEQUENTIAL_P50_TARGET_MS = 25.0
SEQUENTIAL_P99_TARGET_MS = 50.0
SEQUENTIAL_CPU_TARGET_MS = 25.0  # server CPU per create
BULK_RATE_TARGET = 15_000.0  # items/s
BULK_L2_RATIO_TARGET = 0.60  # of L2 at 1,000 rows per insert (the batch size)
BULK_CPU_TARGET_MS = 60.0  # server CPU per 1,000 items
CONCURRENT_SPEEDUP_TARGET = 5.0  # 64 callers' calls/s over the sequential rate
BULK_L2_ROWS_PER_INSERT = 1_000

# --- the load ---------------------------------------------------------------------------------------------
SINGLE_CALLERS = 64
BATCH_IN_FLIGHT = 4  # per client process
SCALING_PROCESSES = (1, 2, 4)
# 64: at most one row per concurrent caller of scenario 1 in each insert, so L2 at 64 rows is the
# storage ceiling of that scenario (every call waits for its insert).
L2_SINGLE_ROWS_PER_INSERT = 64
L2_ROWS_PER_INSERT = (L2_SINGLE_ROWS_PER_INSERT, 1_000, 10_000, 100_000)
L2_LIMIT_ROWS_PER_INSERT = 10_000  # the service's micro-batcher puts at most 10,000 rows in one insert


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
    # Scenario 7: ("single" or "batch", "connect-proto" or "connect-json") -> the measurement.
    http: dict[tuple[str, str], Measurement] = field(default_factory=dict)
    sequential: Measurement | None = None  # scenario 3: one caller, one CreateFeedback after the other
    batch_one: Measurement | None = None  # scenario 4: 1,000-item batches, 1 in flight
    floors: dict[str, float] = field(default_factory=dict)  # ingest_limits.py floors, ms

    @property
    def batch_limit(self) -> tuple[float, str]:
        l1 = self.l1_batch[1].rate
        variants = self.l2[L2_LIMIT_ROWS_PER_INSERT]["variants"]
        best = max(variants, key=lambda name: variants[name]["rows_per_s"])
        l2 = float(variants[best]["rows_per_s"])
        return (l1, "L1 batch echo") if l1 <= l2 else (l2, f"L2 {L2_LIMIT_ROWS_PER_INSERT:,}-row inserts, {best}")


def ms_per_insert(variant: dict[str, Any]) -> str:
    return f"{variant['insert_s'] / max(variant['inserts'], 1) * 1000:.0f}"


TARGET_HEADERS = ("figure", "service", "limit", "ratio", "target", "result")
LIMIT_HEADERS = (
    "limit",
    "measured",
    "per call",
    "CPU per 1,000 events",
    "CPU cores (echo server or storage)",
    "other load (cores)",
)
DETAIL_HEADERS = (
    "measurement",
    "rate",
    "per call",
    "server CPU per 1,000 events",
    "CPU cores: server / clients / other",
    "server peak RSS",
)


def processes_label(count: int) -> str:
    return f"{count} client process" if count == 1 else f"{count} client processes"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _per_s(value: float, unit: str = "events/s") -> str:
    return f"{value:,.0f} {unit}"


def _gb(size: int) -> str:
    return f"{size / 1e9:.2f} GB"


def http_rows(
    single: Measurement, batch: Measurement, http: dict[tuple[str, str], Measurement]
) -> list[tuple[str, ...]]:
    """Scenario 7: each Connect measurement beside the gRPC one of the same load in the same run."""
    rows: list[tuple[str, ...]] = []
    for scenario, grpc_measurement, unit in (("single", single, "calls/s"), ("batch", batch, "events/s")):
        for transport, target in CONNECT_RATIO_TARGETS.items():
            measurement = http.get((scenario, transport))
            if measurement is None:
                continue
            label = (
                f"7. CreateFeedback calls/s over {TRANSPORT_LABELS[transport]}, 64 callers"
                if scenario == "single"
                else f"7. BatchCreateFeedback events/s over {TRANSPORT_LABELS[transport]}, 1,000-item batches"
            )
            ratio = measurement.rate / grpc_measurement.rate
            rows.append(
                (
                    label,
                    _per_s(measurement.rate, unit),
                    f"{_per_s(grpc_measurement.rate, unit)} (gRPC, same run)",
                    f"{ratio:.0%}",
                    f">= {target:.0%} of gRPC",
                    _verdict(ratio >= target),
                )
            )
            if scenario == "single":
                p50, p99 = percentile(measurement.latencies_ms, 0.5), percentile(measurement.latencies_ms, 0.99)
                grpc_p50 = percentile(grpc_measurement.latencies_ms, 0.5)
                grpc_p99 = percentile(grpc_measurement.latencies_ms, 0.99)
                rows.append(
                    (
                        f"7. CreateFeedback latency p50 / p99 over {TRANSPORT_LABELS[transport]}",
                        f"{p50:.1f} / {p99:.1f} ms",
                        f"{grpc_p50:.1f} / {grpc_p99:.1f} ms (gRPC)",
                        "",
                        "-",
                        "",
                    )
                )
            else:
                rows.append(
                    (
                        f"7. server CPU per 1,000 events over {TRANSPORT_LABELS[transport]}",
                        f"{measurement.server_cpu_per_1000_ms:.0f} ms",
                        f"{grpc_measurement.server_cpu_per_1000_ms:.0f} ms (gRPC)",
                        f"{measurement.server_cpu_per_1000_ms / grpc_measurement.server_cpu_per_1000_ms:.1f}x",
                        "-",
                        "",
                    )
                )
    return rows


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
    storage = results.l2[L2_SINGLE_ROWS_PER_INSERT]["variants"]
    best = max(storage, key=lambda name: float(storage[name]["rows_per_s"]))
    ceiling = float(storage[best]["rows_per_s"])
    rows.append(
        (
            "1. CreateFeedback calls/s beside the storage ceiling for 64 callers",
            _per_s(single.rate, "calls/s"),
            f"{_per_s(ceiling, 'rows/s')} (L2 {L2_SINGLE_ROWS_PER_INSERT}-row inserts, {best})",
            f"{single.rate / ceiling:.0%}",
            "-",
            "",
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
                f"6. BatchCreateFeedback events/s, {processes_label(processes)}",
                _per_s(measurement.rate),
                f"{_per_s(echo.rate)} (L1 echo, {processes} proc.)",
                f"{measurement.rate / echo.rate:.0%}",
                "-",
                "",
            )
        )
    rows += http_rows(results.single, results.batch[1], results.http)
    rows += write_cost_rows(results)
    rows += floor_rows(results)
    return rows


def _l2_best(results: Results, rows_per_insert: int) -> tuple[float, str]:
    variants = results.l2[rows_per_insert]["variants"]
    best = max(variants, key=lambda name: float(variants[name]["rows_per_s"]))
    return float(variants[best]["rows_per_s"]), best


def write_cost_rows(results: Results) -> list[tuple[str, ...]]:
    """Scenarios 3 and 4 (the write-cost targets), each beside its limit and its storage floor."""
    rows: list[tuple[str, ...]] = []
    sequential, floors = results.sequential, results.floors
    if sequential is None or results.batch_one is None:
        return rows
    p50, p99 = percentile(sequential.latencies_ms, 0.5), percentile(sequential.latencies_ms, 0.99)
    lookup_and_insert = floors.get("lookup_64_ids", 0.0) + floors.get("insert_1_feedback", 0.0)
    floor = f"{lookup_and_insert:.1f} ms (floor: lookup + 1-row insert into feedback)"
    for label, value, target in (("p50", p50, SEQUENTIAL_P50_TARGET_MS), ("p99", p99, SEQUENTIAL_P99_TARGET_MS)):
        rows.append(
            (
                f"3. CreateFeedback latency {label}, one caller, sequential",
                f"{value:.1f} ms",
                floor,
                f"{value / lookup_and_insert:.1f}x floor" if lookup_and_insert else "",
                f"<= {target:.0f} ms",
                _verdict(value <= target),
            )
        )
    cpu_ms = sequential.server_cpu_per_1000_ms / 1000
    rows.append(
        (
            "3. server CPU per sequential create",
            f"{cpu_ms:.1f} ms",
            "",
            "",
            f"<= {SEQUENTIAL_CPU_TARGET_MS:.0f} ms",
            _verdict(cpu_ms <= SEQUENTIAL_CPU_TARGET_MS),
        )
    )
    speedup = results.single.rate / sequential.rate
    rows.append(
        (
            "3. 64 concurrent callers over the sequential rate",
            f"{_per_s(results.single.rate, 'calls/s')} / {_per_s(sequential.rate, 'calls/s')}",
            "",
            f"{speedup:.1f}x",
            f">= {CONCURRENT_SPEEDUP_TARGET:.0f}x",
            _verdict(speedup >= CONCURRENT_SPEEDUP_TARGET),
        )
    )
    l2, l2_variant = _l2_best(results, BULK_L2_ROWS_PER_INSERT)
    for label, measurement in (
        ("4. BatchCreateFeedback, 1,000-item batches, 1 in flight", results.batch_one),
        ("4. BatchCreateFeedback, 1,000-item batches, 4 in flight", results.batch[1]),
        ("4. SDK log() + flush, default BatchingOptions", results.sdk),
    ):
        rows.append(
            (
                f"{label}: items/s",
                _per_s(measurement.rate, "items/s"),
                f"{_per_s(l2, 'rows/s')} (L2 {BULK_L2_ROWS_PER_INSERT:,}-row inserts with derived rows, {l2_variant})",
                f"{measurement.rate / l2:.0%}",
                f">= {BULK_RATE_TARGET:,.0f} and >= {BULK_L2_RATIO_TARGET:.0%} of L2",
                _verdict(measurement.rate >= BULK_RATE_TARGET and measurement.rate / l2 >= BULK_L2_RATIO_TARGET),
            )
        )
        rows.append(
            (
                f"{label}: server CPU per 1,000 items",
                f"{measurement.server_cpu_per_1000_ms:.0f} ms",
                "",
                "",
                f"<= {BULK_CPU_TARGET_MS:.0f} ms",
                _verdict(measurement.server_cpu_per_1000_ms <= BULK_CPU_TARGET_MS),
            )
        )
    return rows


FLOOR_LABELS = {
    "select_1": "SELECT 1",
    "lookup_64_ids": "point lookup of 64 ids by primary key",
    "insert_1_bare": "1-row insert into a bare ReplacingMergeTree table",
    "insert_1_feedback": "1-row insert into feedback (what a create waits for)",
    "insert_1_changes": "1-row insert into feedback_changes (its views: the deriver's part)",
    "insert_1_feedback_and_changes": "1-row insert into feedback, then into feedback_changes",
}


def floor_rows(results: Results) -> list[tuple[str, ...]]:
    return [
        (f"floor: {FLOOR_LABELS.get(name, name)}", f"{ms:.1f} ms", "", "", "", "")
        for name, ms in results.floors.items()
    ]


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
                f"L1 1,000-item batch echo, {processes_label(processes)} x {BATCH_IN_FLIGHT} in flight",
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
                    f"{ms_per_insert(variant)} ms",
                    f"{storage['cpu_s_per_1000'] * 1000:.0f} ms",
                    f"{storage['cpu_cores']:.2f}",
                    f"{storage['other_cores']:.2f}",
                )
            )
    return rows


def detail_rows(results: Results) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    measurements = [results.l1_single, *results.l1_batch.values(), results.single, *results.batch.values()]
    measurements += [m for m in (results.sequential, results.batch_one) if m is not None]
    for measurement in [*measurements, results.sdk, *results.http.values()]:
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
