"""The two limits of bench/ingest_bench.py, each run as a process of its own.

``python bench/ingest_limits.py echo``: L1, the gRPC limit. A grpc.aio server with the service's
messages and server options whose FeedbackService does nothing but echo (CreateFeedback returns the
request's feedback, BatchCreateFeedback one result per item holding the item). Prints
``{"port": N}`` once it listens, serves until SIGTERM or SIGINT, exits 0.

``python bench/ingest_limits.py floors DATA_DIR``: the storage floors of one write (see measure_floors).

``python bench/ingest_limits.py storage DATA_DIR ROWS_PER_INSERT SECONDS``: L2, the storage limit.
On a data dir that ``python -m feedback_service migrate`` prepared, clickhouse-connect's embedded
engine stores rows the way the service does, ROWS_PER_INSERT at a time, one after the other, for
SECONDS: each block is inserted into ``feedback`` and then into ``feedback_changes``, whose
materialized views fill the derived tables (the service's writer and its deriver; the deriver may
cover several writes with one insert, this limit never does). The rows are the service's own:
domain ``Feedback`` objects of the bench mix turned into rows by ``feedback_service.store.rows.to_row``
and inserted with its column names and types, the call the service makes. Inserts alternate between
default settings and the service's tuned ones (``INSERT_VARIANTS``), each variant timed on its own.
Prints one JSON line with the rows/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from ingest_workload import Draft, Identities, cpu_s, drafts, machine_busy_s, peak_rss_bytes

from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_proto.v1 import feedback_service_pb2_grpc

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # feedback_service.server's limit
PROJECT = "ingest-l2"
WRITER_KEY_ID = "bootstrap-admin"  # the key id the service records for the bootstrap admin key
STORAGE_WARMUP_INSERTS = 2
MIN_ROW_POOL = 20_000
# Inserts alternate between these settings, each timed on its own; the better is the limit. "tuned"
# is what the service's store sends since commit b194396 (materialized views in parallel, no merge of
# the inserted block): a service that finds faster insert settings should add them here.
INSERT_VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "tuned": {"parallel_view_processing": 1, "optimize_on_insert": 0},
}


# ---- L1: echo ---------------------------------------------------------------------------------------------


class EchoServicer(feedback_service_pb2_grpc.FeedbackServiceServicer):
    """The service's messages with no work behind them (no auth, validation or storage)."""

    async def CreateFeedback(self, request: pb.CreateFeedbackRequest, context: Any) -> pb.CreateFeedbackResponse:  # noqa: N802
        return pb.CreateFeedbackResponse(feedback=request.feedback)

    async def BatchCreateFeedback(  # noqa: N802
        self, request: pb.BatchCreateFeedbackRequest, context: Any
    ) -> pb.BatchCreateFeedbackResponse:
        return pb.BatchCreateFeedbackResponse(
            results=[pb.BatchCreateFeedbackResult(feedback=item) for item in request.feedback]
        )


async def serve_echo() -> int:
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
    )
    feedback_service_pb2_grpc.add_FeedbackServiceServicer_to_server(EchoServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"port": port}), flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop(1)
    return 0


# ---- L2: storage ------------------------------------------------------------------------------------------


def _domain_feedback(draft: Draft, feedback_id: str, trace_id: str, now: datetime) -> Any:
    """What the service stores for a create of ``draft`` by the bootstrap admin key (revision 1)."""
    from feedback_service.domain.model import Feedback, FeedbackValue, Source, Thumb  # noqa: PLC0415

    if draft.key == "thumbs":
        value = FeedbackValue.of_thumb(Thumb(draft.thumb))
    elif draft.score is not None:
        value = FeedbackValue.of_score(draft.score)
    else:
        value = FeedbackValue.of_label(draft.label)
    return Feedback(
        project=PROJECT,
        feedback_id=feedback_id,
        trace_id=trace_id,
        key=draft.key,
        value=value,
        session_id=draft.session_id,
        model=draft.model,
        model_version=draft.model_version,
        comment=draft.comment,
        correction=draft.correction,
        source=Source(draft.source),
        author=draft.author,
        metadata=draft.metadata,
        create_time=now,
        update_time=now,
        revision=1,
        created_by=WRITER_KEY_ID,
        updated_by=WRITER_KEY_ID,
    )


def measure_storage(data_dir: Path, rows_per_insert: int, seconds: float) -> dict[str, Any]:
    import os  # noqa: PLC0415

    import clickhouse_connect  # noqa: PLC0415  (only this process loads the embedded engine)

    from feedback_service.domain.feedback.fingerprint import create_fingerprint  # noqa: PLC0415
    from feedback_service.store import rows as service_rows  # noqa: PLC0415
    from feedback_service.store.deriver import CHANGES_TABLE  # noqa: PLC0415

    identities = Identities()
    now = datetime.now(UTC)
    pool: list[list[Any]] = []
    for draft in itertools.islice(drafts(seed=11), max(rows_per_insert, MIN_ROW_POOL)):
        feedback = _domain_feedback(draft, *identities.take(), now)
        pool.append(service_rows.to_row(feedback, fingerprint=create_fingerprint(feedback)))
    id_column = service_rows.COLUMN_NAMES.index("feedback_id")
    trace_column = service_rows.COLUMN_NAMES.index("trace_id")
    client = clickhouse_connect.get_client(interface="chdb", path=str(data_dir), database="feedback")
    pid = os.getpid()

    def next_rows(offset: int) -> list[list[Any]]:
        """``rows_per_insert`` rows of the pool with new feedback and trace ids (not timed)."""
        chosen = [pool[(offset + i) % len(pool)] for i in range(rows_per_insert)]
        for row in chosen:
            row[id_column], row[trace_column] = identities.take()
        return chosen

    def insert(batch: list[list[Any]], settings: dict[str, Any]) -> float:
        began = time.perf_counter()
        for table in (service_rows.TABLE, CHANGES_TABLE):  # the record, then its derived rows
            client.insert(
                table,
                batch,
                column_names=service_rows.COLUMN_NAMES,
                column_type_names=service_rows.COLUMN_TYPES,
                settings=settings,
            )
        return time.perf_counter() - began

    variants = tuple(INSERT_VARIANTS.items())
    for n in range(STORAGE_WARMUP_INSERTS):
        insert(next_rows(n * rows_per_insert), variants[n % len(variants)][1])
    rows = dict.fromkeys(INSERT_VARIANTS, 0)
    inserts = dict.fromkeys(INSERT_VARIANTS, 0)
    insert_s = dict.fromkeys(INSERT_VARIANTS, 0.0)
    cpu_before, machine_before, wall_before = cpu_s(pid), machine_busy_s(), time.monotonic()
    for name, settings in itertools.cycle(variants):  # alternate, so both see the same merges and noise
        if time.monotonic() - wall_before >= seconds:
            break
        batch = next_rows(sum(rows.values()))
        insert_s[name] += insert(batch, settings)
        rows[name] += len(batch)
        inserts[name] += 1
    wall = time.monotonic() - wall_before
    own_cpu = cpu_s(pid) - cpu_before
    other = max(0.0, machine_busy_s() - machine_before - own_cpu) / wall
    stored = client.query("SELECT count() FROM feedback WHERE project = {p:String}", parameters={"p": PROJECT})
    client.close()
    total = sum(rows.values())
    return {
        "rows_per_insert": rows_per_insert,
        "variants": {
            name: {"rows": rows[name], "inserts": inserts[name], "insert_s": insert_s[name]}
            | {"rows_per_s": rows[name] / insert_s[name] if insert_s[name] else 0.0}
            for name in INSERT_VARIANTS
        },
        "rows_per_s": total / sum(insert_s.values()),
        "cpu_s_per_1000": own_cpu / total * 1000,
        "cpu_cores": own_cpu / wall,
        "other_cores": other,
        "stored_rows": int(stored.result_rows[0][0]),
        "expected_rows": total + STORAGE_WARMUP_INSERTS * rows_per_insert,
        "peak_rss_bytes": peak_rss_bytes(pid),
    }


FLOOR_SAMPLES = 40


def measure_floors(data_dir: Path) -> dict[str, float]:
    """The storage floors of one write, each the median of FLOOR_SAMPLES calls on a migrated data dir (ms):
    ``SELECT 1``; a point lookup of 64 ids by primary key (the write path's read); a 1-row insert into
    a bare ReplacingMergeTree table (feedback's engine, no views); a 1-row insert into ``feedback``
    (what a create waits for now); a 1-row insert into ``feedback_changes`` (its views: the
    deriver's part); and both, one after the other (a write and its derived rows, unbatched)."""
    import statistics  # noqa: PLC0415
    import uuid  # noqa: PLC0415

    import clickhouse_connect  # noqa: PLC0415

    from feedback_service.domain.feedback.fingerprint import create_fingerprint  # noqa: PLC0415
    from feedback_service.store import rows as service_rows  # noqa: PLC0415
    from feedback_service.store.deriver import CHANGES_TABLE  # noqa: PLC0415
    from feedback_service.store.query_params import StringArray  # noqa: PLC0415

    client = clickhouse_connect.get_client(interface="chdb", path=str(data_dir), database="feedback")
    client.command(f"CREATE TABLE IF NOT EXISTS bare AS {service_rows.TABLE}")
    now = datetime.now(UTC)
    identities = Identities()
    drafts_pool = list(itertools.islice(drafts(seed=13), 64))

    def one_row() -> list[Any]:
        feedback = _domain_feedback(drafts_pool[0], *identities.take(), now)
        return service_rows.to_row(feedback, fingerprint=create_fingerprint(feedback))

    def insert(*tables: str) -> None:
        row = one_row()
        for table in tables:
            client.insert(
                table,
                [row],
                column_names=service_rows.COLUMN_NAMES,
                column_type_names=service_rows.COLUMN_TYPES,
                settings={"optimize_on_insert": 0, "parallel_view_processing": 1},
            )

    ids = StringArray(str(uuid.uuid4()) for _ in range(64))
    calls: dict[str, Any] = {
        "select_1": lambda: client.query("SELECT 1"),
        "lookup_64_ids": lambda: client.query(
            f"SELECT feedback_id, revision FROM {service_rows.TABLE} WHERE project = {{p:String}} "  # noqa: S608
            "AND feedback_id IN {ids:Array(String)}",
            parameters={"p": PROJECT, "ids": ids},
        ),
        "insert_1_bare": lambda: insert("bare"),
        "insert_1_feedback": lambda: insert(service_rows.TABLE),
        "insert_1_changes": lambda: insert(CHANGES_TABLE),
        "insert_1_feedback_and_changes": lambda: insert(service_rows.TABLE, CHANGES_TABLE),
    }
    floors: dict[str, float] = {}
    for name, call in calls.items():
        for _ in range(5):
            call()
        samples = []
        for _ in range(FLOOR_SAMPLES):
            began = time.perf_counter()
            call()
            samples.append((time.perf_counter() - began) * 1000)
        floors[name] = statistics.median(samples)
    client.close()
    return floors


def main(argv: Sequence[str]) -> int:
    match list(argv):
        case ["echo"]:
            with contextlib.suppress(KeyboardInterrupt):
                return asyncio.run(serve_echo())
            return 0
        case ["storage", data_dir, rows_per_insert, seconds]:
            print(json.dumps(measure_storage(Path(data_dir), int(rows_per_insert), float(seconds))), flush=True)
            return 0
        case ["floors", data_dir]:
            print(json.dumps(measure_floors(Path(data_dir))), flush=True)
            return 0
        case _:
            print(__doc__, file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
