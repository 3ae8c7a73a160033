"""Derived tables stay exact after any crash: the start-up repair, `feedback verify` and `feedback repair`.

Each test checks what users read after the crash (aggregates against a brute-force recomputation over
ListFeedback, exports against lists, one current vote per user), not only rows. The deterministic tests cut
an insert between `feedback` and its views on every run (tests/support/cut_write.py); the SIGKILL cycles
kill a loaded server at random moments.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from clickhouse_connect.driver.client import Client

from feedback_proto.v1 import aggregates_pb2 as agg
from feedback_proto.v1 import feedback_pb2
from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_service.domain.feedback.listing import FeedbackFilter
from feedback_service.domain.feedback.operations import FeedbackOperations
from feedback_service.domain.model import Feedback, FeedbackInput, FeedbackValue, Source, Thumb, ValueKind
from feedback_service.server import migrate
from feedback_service.store.derived_repair import CheckScope
from feedback_service.store.deriver import insert_changes
from feedback_service.store.engine import ClickHouseEngine, EngineConfig
from feedback_service.store.feedback_store import ClickHouseFeedbackStore, insert_feedback_rows
from feedback_service.store.migrations import apply_migrations, load_migrations
from feedback_service.store.rows import RowBlock, to_row
from tests.helpers import thumbs_up
from tests.support.server_process import ServerProcess, child_environment, run_cli
from tests.test_aggregates import assert_matches_brute_force
from tests.test_export import export, ids
from tests.test_server_process import RPC_TIMEOUT_S, events_named, feedback_stub, list_all

if TYPE_CHECKING:
    from feedback_proto.v1.feedback_service_pb2_grpc import FeedbackServiceAsyncStub as FeedbackServiceStub

PROJECT = "crash"
# The cut write of _cut_spec deletes bob's only vote: distinct authors (a sketch, never subtracted) still count him.
GONE = {("bot", "v1", "thumbs", feedback_pb2.SOURCE_USER): {"bob"}}
REPO = Path(__file__).resolve().parent.parent
TRACES = [f"{n:032x}" for n in range(1, 9)]
AUTHORS = ["ann", "bob", "cat"]


async def assert_users_read_consistent(
    stub: FeedbackServiceStub, project: str, *, gone_authors: dict[Any, set[str]] | None = None
) -> list[feedback_pb2.Feedback]:
    """Aggregates equal brute force over ListFeedback; export returns every listed feedback exactly once;
    one current vote per (trace, key, author). Returns the listed feedback. ``gone_authors``: see
    assert_matches_brute_force."""
    await assert_matches_brute_force(stub, project, gone_authors=gone_authors)
    listed = await list_all(stub, project)
    exported = ids(await export(stub, pb.ExportFeedbackRequest(filter=agg.AggregateFilter(project=project))))
    repeated = [i for i, n in collections.Counter(exported).items() if n > 1]
    assert not repeated, f"exported more than once: {repeated[:5]}"
    missing = sorted({f.feedback_id for f in listed} - set(exported))
    assert not missing, f"{len(missing)} listed feedback never exported: {missing[:5]}"
    assert len(exported) == len(listed)
    votes = collections.Counter(
        (f.trace_id, f.key, f.author) for f in listed if f.source == feedback_pb2.SOURCE_USER and f.author
    )
    doubled = [vote for vote, n in votes.items() if n > 1]
    assert not doubled, f"more than one current vote: {doubled[:5]}"
    return listed


async def assert_a_new_vote_replaces_the_old(
    stub: FeedbackServiceStub, project: str, trace_id: str, author: str
) -> None:
    vote = thumbs_up(project, trace_id=trace_id, author=author, thumb=feedback_pb2.THUMB_DOWN, model="bot")
    created = await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=vote), timeout=RPC_TIMEOUT_S)
    page = await stub.ListFeedback(
        pb.ListFeedbackRequest(project=project, trace_id=trace_id, author=author, key="thumbs"), timeout=RPC_TIMEOUT_S
    )
    current = [f for f in page.feedback if f.source == feedback_pb2.SOURCE_USER]
    assert [f.feedback_id for f in current] == [created.feedback.feedback_id], (
        f"votes of {author} on {trace_id}: {current}"
    )


def _vote(trace: int, author: str, thumb: int, **fields: Any) -> feedback_pb2.Feedback:
    return thumbs_up(
        PROJECT, trace_id=TRACES[trace], author=author, thumb=thumb, model="bot", model_version="v1", **fields
    )


async def _seed(stub: FeedbackServiceStub) -> dict[str, str]:
    """Votes, a reviewer score and a label; returns ids by name."""
    items = {
        "ann-t0": _vote(0, "ann", feedback_pb2.THUMB_UP),
        "bob-t1": _vote(1, "bob", feedback_pb2.THUMB_UP, comment="nice"),
        "review": thumbs_up(
            PROJECT,
            trace_id=TRACES[0],
            key="quality",
            score=4.0,
            source=feedback_pb2.SOURCE_REVIEWER,
            author="rev",
            model="bot",
            model_version="v1",
        ),
        "label": thumbs_up(
            PROJECT, trace_id=TRACES[2], key="topic", label="billing", source=feedback_pb2.SOURCE_AUTOMATED, model="bot"
        ),
    }
    for item in items.values():
        item.ClearField("feedback_id")
    response = await stub.BatchCreateFeedback(
        pb.BatchCreateFeedbackRequest(feedback=list(items.values())), timeout=RPC_TIMEOUT_S
    )
    return {name: result.feedback.feedback_id for name, result in zip(items, response.results, strict=True)}


def _cut_write(data_dir: Path, spec: dict[str, Any]) -> str:
    """Run the real store in a process that dies between the feedback insert and its views."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.cut_write", str(data_dir), json.dumps(spec)],
        cwd=REPO,
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    return done.stdout


def _cut_spec(seeded: dict[str, str], cut: str, views: list[str]) -> dict[str, Any]:
    return {
        "project": PROJECT,
        "cut": cut,
        "views": views,
        "creates": [
            # ann changes her vote on trace 0 (the old one becomes a tombstone); cat votes for the first time.
            {
                "trace_id": TRACES[0],
                "key": "thumbs",
                "value_kind": "THUMB",
                "thumb": 2,
                "source": 1,
                "author": "ann",
                "model": "bot",
                "model_version": "v1",
            },
            {
                "trace_id": TRACES[3],
                "key": "thumbs",
                "value_kind": "THUMB",
                "thumb": 1,
                "source": 1,
                "author": "cat",
                "model": "bot",
                "model_version": "v2",
                "comment": "fast",
            },
            {
                "trace_id": TRACES[3],
                "key": "quality",
                "value_kind": "SCORE",
                "score": 2.5,
                "source": 2,
                "author": "rev",
                "model": "bot",
                "model_version": "v2",
                "correction": "better",
            },
        ],
        "updates": [{"feedback_id": seeded["review"], "comment": "on reflection"}],
        "deletes": [seeded["bob-t1"]],
    }


def _repaired_metric(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.findall(r'^feedback_repaired_writes_total\{table="(\w+)"\} (\S+)$', text, re.MULTILINE)
    return {table: float(value) for table, value in found}


def _verify(data_dir: Path, command: str = "verify", *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli([command, "--data-dir", str(data_dir), *extra], cwd=data_dir.parent, timeout_s=120)


@pytest.mark.parametrize(
    ("cut", "views"),
    [
        pytest.param("after-insert", [], id="acknowledged-not-derived"),
        pytest.param("during-derive", ["user_votes_mv", "feedback_rollups_mv"], id="derived-in-part"),
    ],
)
async def test_a_write_cut_between_feedback_and_its_views_is_completed_at_start(
    tmp_path: Path, cut: str, views: list[str]
) -> None:
    data_dir = tmp_path / "data"
    async with ServerProcess(data_dir) as first, first.channel() as channel:
        seeded = await _seed(feedback_stub(channel))
        assert await first.terminate_async() == 0

    _cut_write(data_dir, _cut_spec(seeded, cut, views))
    # The fault hit: the stopped data dir has feedback without its derived rows, and verify says where.
    before = _verify(data_dir)
    assert before.returncode == 7, before.stdout + before.stderr
    for table in ("user_votes", "feedback_rollups"):
        assert f"{table:<20} equal" not in before.stdout, before.stdout
    assert "feedback repair" in before.stdout

    metrics = {"FEEDBACK_METRICS_LISTEN": "127.0.0.1:0"}
    async with ServerProcess(data_dir, env=metrics) as second, second.channel() as channel:
        (checked,) = events_named(second, "derived_tables_checked")
        assert isinstance(checked["repaired"], int), checked
        assert checked["repaired"] > 0, checked
        assert checked["unexplained"] == 0, checked
        (listening,) = events_named(second, "metrics_listening")
        counted = _repaired_metric(int(str(listening["port"])))
        assert sum(counted.values()) == checked["repaired"], counted
        assert counted["feedback_rollups"] > 0, counted
        assert counted["user_votes"] > 0, counted
        # Readiness comes after the repair: the listening line follows the check.
        events = [event.get("event") for event in second.log_events()]
        assert events.index("derived_tables_checked") < events.index("listening")
        stub = feedback_stub(channel)
        listed = await assert_users_read_consistent(stub, PROJECT, gone_authors=GONE)
        by_author = {(f.trace_id, f.author): f for f in listed if f.source == feedback_pb2.SOURCE_USER}
        assert by_author[(TRACES[0], "ann")].thumb == feedback_pb2.THUMB_DOWN  # the cut write's vote counts
        assert (TRACES[1], "bob") not in by_author  # and its delete
        await assert_a_new_vote_replaces_the_old(stub, PROJECT, TRACES[0], "ann")
        await assert_a_new_vote_replaces_the_old(stub, PROJECT, TRACES[3], "cat")
        await assert_users_read_consistent(stub, PROJECT, gone_authors=GONE)
        assert await second.terminate_async() == 0

    after = _verify(data_dir, "verify", "--project", PROJECT)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "the derived tables equal their recomputation from feedback" in after.stdout

    # A clean stop leaves a checkpoint: the next start checks (almost) nothing and repairs nothing.
    async with ServerProcess(data_dir) as third:
        (checked,) = events_named(third, "derived_tables_checked")
        assert checked["repaired"] == 0, checked
        assert await third.terminate_async() == 0


async def test_feedback_repair_corrects_once_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with ServerProcess(data_dir) as first, first.channel() as channel:
        seeded = await _seed(feedback_stub(channel))
        assert await first.terminate_async() == 0
    _cut_write(data_dir, _cut_spec(seeded, "during-derive", ["feedback_by_time_mv", "feedback_rollups_mv"]))

    repaired = _verify(data_dir, "repair", "--project", PROJECT)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "corrected" in repaired.stdout
    again = _verify(data_dir, "repair", "--project", PROJECT)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "corrected" not in again.stdout
    for table in ("feedback_by_time", "user_votes", "feedback_rollups"):
        assert f"{table:<20} equal" in again.stdout, again.stdout

    async with ServerProcess(data_dir) as second, second.channel() as channel:
        (checked,) = events_named(second, "derived_tables_checked")
        assert checked["repaired"] == 0, checked  # feedback repair left nothing for the start-up check
        await assert_users_read_consistent(feedback_stub(channel), PROJECT, gone_authors=GONE)


def test_verify_refuses_an_empty_time_range_with_exit_code_2(tmp_path: Path) -> None:
    done = _verify(tmp_path / "data", "verify", "--since", "2026-12-02T00:00:00Z", "--until", "2026-12-01T00:00:00Z")
    assert done.returncode == 2
    assert "--until" in done.stderr


# -- SIGKILL at random moments under concurrent batch and single ingest with user votes ----------


class VotingLoad:
    """Singles and batches of end-user votes on a few traces by a few authors (so votes replace each other),
    plus reviewer scores; runs until cancelled or the server is gone."""

    def __init__(self, stub: FeedbackServiceStub, seed: int) -> None:
        self.stub = stub
        self.random = random.Random(seed)
        self.acknowledged = 0

    def item(self) -> feedback_pb2.Feedback:
        trace = self.random.randrange(len(TRACES))
        if self.random.random() < 0.2:
            return thumbs_up(
                PROJECT,
                trace_id=TRACES[trace],
                key="quality",
                score=self.random.choice([1.0, 2.5, 4.0]),
                source=feedback_pb2.SOURCE_REVIEWER,
                author="rev",
                model="bot",
                model_version="v2",
            )
        thumb = self.random.choice([feedback_pb2.THUMB_UP, feedback_pb2.THUMB_DOWN])
        return _vote(trace, self.random.choice(AUTHORS), thumb, comment=self.random.choice(["", "why"]))

    async def singles(self) -> None:
        while True:
            try:
                await self.stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=self.item()), timeout=RPC_TIMEOUT_S)
            except grpc.aio.AioRpcError:
                return
            self.acknowledged += 1

    async def batches(self, size: int = 50) -> None:
        while True:
            items = [self.item() for _ in range(size)]
            try:
                await self.stub.BatchCreateFeedback(
                    pb.BatchCreateFeedbackRequest(feedback=items), timeout=RPC_TIMEOUT_S
                )
            except grpc.aio.AioRpcError:
                return
            self.acknowledged += size


async def test_sigkill_cycles_during_voting_ingest_leave_what_users_read_exact(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    cycles, repaired, acknowledged = 3, [], 0
    chance = random.Random(20261204)
    for cycle in range(cycles + 1):
        async with ServerProcess(data_dir) as server, server.channel() as channel:
            (checked,) = events_named(server, "derived_tables_checked")
            assert checked["unexplained"] == 0, checked
            repaired.append(checked["repaired"])
            stub = feedback_stub(channel)
            if cycle:
                await assert_users_read_consistent(stub, PROJECT)
            if cycle == cycles:
                for author in AUTHORS:
                    await assert_a_new_vote_replaces_the_old(stub, PROJECT, TRACES[0], author)
                await assert_users_read_consistent(stub, PROJECT)
                assert await server.terminate_async() == 0
                break
            load = VotingLoad(stub, seed=cycle)
            workers = [asyncio.create_task(load.singles()) for _ in range(8)]
            workers += [asyncio.create_task(load.batches()) for _ in range(4)]
            started = time.monotonic()
            while load.acknowledged < 100 and time.monotonic() - started < 30:  # noqa: ASYNC110  (polls a counter)
                await asyncio.sleep(0.05)
            await asyncio.sleep(chance.uniform(0.0, 1.5))
            server.kill()
            await asyncio.wait_for(asyncio.gather(*workers, return_exceptions=True), timeout=60)
            acknowledged += load.acknowledged
            assert server.exit_code == -signal.SIGKILL
    print(f"{cycles} SIGKILL cycles, {acknowledged} feedback acknowledged, repairs at each start: {repaired}")
    after = _verify(data_dir)
    assert after.returncode == 0, after.stdout + after.stderr


# -- a view error while the server runs: repaired by the writer before its next flush ----------------


@pytest.mark.parametrize("engine", ["embedded", "http-fixture"], indirect=True)
async def test_an_insert_failing_after_feedback_took_its_rows_is_repaired_before_the_next_write(
    engine: ClickHouseEngine,
) -> None:
    failing = OneFailingInsert()
    store = ClickHouseFeedbackStore(engine, insert_rows=failing)
    store.start()
    operations = FeedbackOperations(store)
    project = f"view-error-{uuid.uuid4().hex[:8]}"
    scope = CheckScope(project=project)
    try:
        first = await operations.create(_draft(project, "ann", thumb=1))
        failing.armed = True
        with pytest.raises(Exception, match="insert failed on purpose"):
            await operations.create(_draft(project, "ann", thumb=2))
        broken = await store.check_derived(scope, apply=False)
        assert broken.by_table()["feedback_rollups"] > 0, broken.by_table()
        assert broken.by_table()["user_votes"] > 0, broken.by_table()

        # The next flush repairs first: the stored vote is counted, and it is the one ann's next vote replaces.
        third = await operations.create(_draft(project, "ann", thumb=1))
        report = await store.check_derived(scope, apply=False)
        assert report.consistent, [(t.table, t.corrections) for t in report.tables]
        current, _ = await operations.list(FeedbackFilter(project=project), page_size=10, page_token="")
        assert [f.feedback_id for f in current] == [third.feedback.feedback_id]
        assert first.feedback.feedback_id != third.feedback.feedback_id
    finally:
        await store.close()


class OneFailingInsert:
    """The store's insert, except once when armed: `feedback` takes the rows and the insert fails anyway, as
    when the reply of a ClickHouse server is lost: the caller gets an error, the rows are stored."""

    def __init__(self) -> None:
        self.armed = False

    def __call__(self, client: Client, rows: RowBlock) -> None:
        insert_feedback_rows(client, rows)
        if self.armed:
            self.armed = False
            raise RuntimeError("insert failed on purpose")


class OneFailingDerive:
    """The deriver's insert, except once when armed: some views get the rows, the insert fails (a view
    error on a ClickHouse server, a restart in the middle)."""

    def __init__(self) -> None:
        self.armed = False

    def __call__(self, client: Client, rows: RowBlock) -> None:
        if not self.armed:
            insert_changes(client, rows)
            return
        self.armed = False
        views = ["user_votes_mv", "feedback_rollups_mv"]
        for view in views:
            client.command(f"DETACH TABLE {view}")
        try:
            insert_changes(client, rows)
        finally:
            for view in views:
                client.command(f"ATTACH TABLE {view}")
        raise RuntimeError("view failed on purpose")


@pytest.mark.parametrize("engine", ["embedded"], indirect=True)
async def test_a_failed_derive_is_repaired_without_waiting_for_another_write(engine: ClickHouseEngine) -> None:
    failing = OneFailingDerive()
    store = ClickHouseFeedbackStore(engine, derive_rows=failing)
    store.start()
    operations = FeedbackOperations(store)
    project = f"derive-error-{uuid.uuid4().hex[:8]}"
    try:
        await operations.create(_draft(project, "ann", thumb=1))
        failing.armed = True
        second = await operations.create(_draft(project, "ann", thumb=2))  # acknowledged: it is in feedback
        # The read waits for the derived tables: the repair runs by itself, no other write needed.
        report = await store.check_derived(CheckScope(project=project), apply=False)
        assert report.consistent, [(t.table, t.corrections) for t in report.tables]
        listed, _ = await operations.list(FeedbackFilter(project=project), page_size=10, page_token="")
        assert [f.feedback_id for f in listed] == [second.feedback.feedback_id]
        third = await operations.create(_draft(project, "ann", thumb=1))
        listed, _ = await operations.list(FeedbackFilter(project=project), page_size=10, page_token="")
        assert [f.feedback_id for f in listed] == [third.feedback.feedback_id]
        assert (await store.check_derived(CheckScope(project=project), apply=False)).consistent
    finally:
        await store.close()


@pytest.mark.parametrize("engine", ["embedded", "http-fixture"], indirect=True)
async def test_the_check_reads_the_same_over_either_transport(engine: ClickHouseEngine) -> None:
    store = ClickHouseFeedbackStore(engine)
    store.start()
    project = f"check-{uuid.uuid4().hex[:8]}"
    try:
        operations = FeedbackOperations(store)
        for author, thumb in (("ann", 1), ("bob", 2), ("ann", 2)):
            await operations.create(_draft(project, author, thumb=thumb))
        assert (await store.check_derived(CheckScope(project=project), apply=False)).consistent  # all derived
        # Take one vote's aggregate delta away, as a lost view insert would.
        await engine.run(
            lambda client: client.command(
                "INSERT INTO feedback_rollups (project, model, model_version, key, source, grain, bucket, "
                "feedback_count, thumbs_down) SELECT project, model, model_version, key, source, grain, bucket, -1, -1 "
                "FROM feedback_rollups WHERE project = {project:String} AND grain = 'day' LIMIT 1",
                parameters={"project": project},
            )
        )
        broken = await store.check_derived(CheckScope(project=project), apply=True)
        assert broken.by_table() == {"feedback_by_time": 0, "user_votes": 0, "feedback_rollups": 1}
        assert broken.tables[2].corrections[0][5] == "day"
        assert broken.tables[2].corrections[0][7:10] == [1, 0, 1]  # count +1, thumbs up 0, thumbs down +1
        assert (await store.check_derived(CheckScope(project=project), apply=False)).consistent
    finally:
        await store.close()


def _draft(project: str, author: str, *, thumb: int) -> FeedbackInput:
    return FeedbackInput(
        project=project,
        trace_id=TRACES[0],
        key="thumbs",
        value_kind=ValueKind.THUMB,
        thumb=thumb,
        source=1,
        author=author,
        model="bot",
    )


async def test_a_database_of_the_previous_release_upgrades_with_its_derived_tables_exact(engine_dir: Path) -> None:
    """Migrations 0009 (checkpoint) and 0010 (views moved to feedback_changes) over a database whose
    feedback was written the old way (views on feedback): nothing is lost or counted twice."""
    database = f"upgrade_{uuid.uuid4().hex[:8]}"
    engine = ClickHouseEngine(EngineConfig(data_dir=engine_dir, database=database))
    project = "upgrade"
    try:
        engine.create_database()
        previous = [m for m in load_migrations() if m.version <= 8]
        await engine.run(lambda client: apply_migrations(client, previous))
        old = [_stored(project, "ann", 0, 1), _stored(project, "bob", 2, 2)]
        # The previous release inserted into feedback, whose views fed the derived tables.
        await engine.run(lambda client: insert_feedback_rows(client, RowBlock.of_rows(old)))
        await migrate(engine)
        store = ClickHouseFeedbackStore(engine)
        first = await store.repair_after_start()
        assert first.scope.written_since is None  # never checked: everything, once
        assert first.consistent, first.by_table()
        store.start()
        try:
            operations = FeedbackOperations(store)
            await operations.create(_draft(project, "ann", thumb=2))  # replaces ann's old vote
            report = await store.check_derived(CheckScope(project=project), apply=False)
            assert report.consistent, report.by_table()
            listed, _ = await operations.list(FeedbackFilter(project=project), page_size=10, page_token="")
            assert sorted((f.author, f.value.thumb.value) for f in listed) == [("ann", 2), ("bob", 2)]
        finally:
            await store.close()
    finally:
        await engine.run(lambda client: client.command(f"DROP DATABASE IF EXISTS `{database}`"))
        await asyncio.to_thread(engine.close)


def _stored(project: str, author: str, trace: int, thumb: int) -> list[Any]:
    now = datetime.now(UTC)
    value = FeedbackValue(ValueKind.THUMB, Thumb(thumb))
    feedback = Feedback(
        project,
        str(uuid.uuid4()),
        TRACES[trace],
        "thumbs",
        value,
        source=Source.USER,
        author=author,
        model="bot",
        create_time=now,
        update_time=now,
        revision=1,
    )
    return to_row(feedback, fingerprint="")
