"""A process that dies between a feedback insert and the inserts of its views, on every run.

Test fixture for the crash repair: ``python -m tests.support.cut_write DATA_DIR SPEC_JSON`` opens the
embedded engine on a stopped server's data dir, runs the real store and domain (FeedbackOperations over
ClickHouseFeedbackStore), and replaces one of the store's two inserts, then SIGKILLs itself:

- ``"cut": "after-insert"``: the rows are in ``feedback``, the deriver never ran (the callers would have
  had their answer: acknowledged feedback without derived rows);
- ``"cut": "during-derive"``: the deriver's insert into ``feedback_changes`` runs with the views named in
  ``"views"`` detached (for this process only: ClickHouse attaches them again at the next start), so some
  derived tables have the rows and others not.

What a crash between the parts leaves behind, deterministically, instead of hoping that a timed SIGKILL
lands in the gap.

SPEC_JSON: {"project": P, "cut": ..., "views": [view names], "creates": [FeedbackInput fields],
"updates": [{"feedback_id": ..., "comment": ...}], "deletes": [feedback ids]}; everything is submitted
at once, so it shares the one flush that is cut.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from feedback_service.domain.feedback.operations import FeedbackOperations
from feedback_service.domain.model import FeedbackInput, ValueKind
from feedback_service.store.deriver import insert_changes
from feedback_service.store.engine import ClickHouseEngine, EngineConfig
from feedback_service.store.feedback_store import BatchingConfig, ClickHouseFeedbackStore, insert_feedback_rows
from feedback_service.store.rows import RowBlock

ALL_VIEWS = ("feedback_by_time_mv", "user_votes_mv", "feedback_rollups_mv")


def _draft(fields: dict[str, Any]) -> FeedbackInput:
    kind = ValueKind[fields.pop("value_kind", "NONE")]
    return FeedbackInput(value_kind=kind, **fields)


async def _run(data_dir: Path, spec: dict[str, Any]) -> None:
    views: list[str] = spec["views"]

    def die(done: str) -> None:
        print(f"{done}; killing myself", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    def insert_then_die(client: Client, rows: RowBlock) -> None:
        insert_feedback_rows(client, rows)
        die(f"inserted {len(rows)} rows into feedback")

    def derive_partly_then_die(client: Client, rows: RowBlock) -> None:
        for view in views:
            client.command(f"DETACH TABLE {view}")  # names from ALL_VIEWS only (checked below)
        insert_changes(client, rows)
        die(f"derived {len(rows)} rows with {views} detached")

    engine = ClickHouseEngine(EngineConfig(data_dir=data_dir))
    # A long batching delay puts every command of the spec into the one flush that is cut.
    cut = spec["cut"]
    store = ClickHouseFeedbackStore(
        engine,
        BatchingConfig(max_delay_s=0.2),
        insert_rows=insert_then_die if cut == "after-insert" else insert_feedback_rows,
        derive_rows=derive_partly_then_die if cut == "during-derive" else insert_changes,
    )
    store.start()
    operations = FeedbackOperations(store)
    project = spec["project"]
    work: list[Coroutine[Any, Any, object]] = [
        operations.create_all([_draft({"project": project, **fields}) for fields in spec["creates"]])
    ]
    for update in spec.get("updates", []):
        draft = FeedbackInput(project=project, feedback_id=update["feedback_id"], comment=update["comment"])
        work.append(operations.update(draft, ["comment"]))
    work += [operations.delete(project, feedback_id) for feedback_id in spec.get("deletes", [])]
    await asyncio.gather(*work)
    await store.close()  # the deriver runs, and dies
    raise SystemExit("the cut insert did not happen")


def main() -> None:
    data_dir, spec = Path(sys.argv[1]), json.loads(sys.argv[2])
    unknown = set(spec["views"]) - set(ALL_VIEWS)
    if unknown:
        raise SystemExit(f"unknown views {sorted(unknown)}; known: {ALL_VIEWS}")
    asyncio.run(_run(data_dir, spec))


if __name__ == "__main__":
    main()
