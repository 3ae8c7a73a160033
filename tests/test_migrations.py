"""Numbered migrations: order, idempotence, refusal of edited or unknown history, and the schema check of
``serve --skip-migrations``. Cluster mode's DDL is in test_cluster_ddl.py."""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client

from feedback_service.domain.evaluation.aggregates import (
    AggregateQuery,
    FeedbackScope,
    GroupCounts,
    GroupField,
    TimeBucket,
)
from feedback_service.domain.feedback.operations import FeedbackOperations
from feedback_service.domain.model import Feedback, FeedbackInput, FeedbackValue, Source, Thumb, ValueKind
from feedback_service.server import check_schema, migrate
from feedback_service.store.cluster_ddl import Cluster
from feedback_service.store.derived_repair import CheckScope
from feedback_service.store.deriver import insert_changes
from feedback_service.store.engine import ClickHouseEngine, EngineConfig
from feedback_service.store.feedback_store import ClickHouseFeedbackStore, insert_feedback_rows
from feedback_service.store.migrations import (
    Migration,
    MigrationError,
    apply_migrations,
    check_schema_current,
    load_migrations,
)
from feedback_service.store.rows import RowBlock, to_row
from tests.support.server_process import ServerProcess, run_cli


@pytest.fixture
def database_client(engine_dir: Path) -> Iterator[Client]:
    name = f"migration_tests_{uuid.uuid4().hex[:8]}"
    admin = clickhouse_connect.get_client(interface="chdb", path=str(engine_dir))
    admin.command(f"CREATE DATABASE {name}")
    client = clickhouse_connect.get_client(interface="chdb", path=str(engine_dir), database=name)
    yield client
    client.close()
    admin.command(f"DROP DATABASE {name}")
    admin.close()


def test_packaged_migrations_are_numbered_from_one_without_gaps() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "0001_feedback.sql"


def test_statements_split_on_line_end_semicolons_only() -> None:
    sql = "-- a comment; not a statement end\nCREATE TABLE a (x String DEFAULT ';');\n\nCREATE TABLE b (y UInt8);\n"
    migration = Migration(version=1, name="0001_x.sql", sql=sql)
    assert migration.statements() == [
        "-- a comment; not a statement end\nCREATE TABLE a (x String DEFAULT ';')",
        "CREATE TABLE b (y UInt8)",
    ]


def test_applying_twice_is_a_no_op_and_records_each_version(database_client: Client) -> None:
    first = apply_migrations(database_client)
    assert [m.name for m in first] == [m.name for m in load_migrations()]
    assert apply_migrations(database_client) == []
    recorded = database_client.query("SELECT version FROM schema_migrations FINAL ORDER BY version").result_rows
    assert [row[0] for row in recorded] == [m.version for m in first]
    columns = database_client.query("SELECT name, comment FROM system.columns WHERE table = 'feedback'")
    assert all(comment for _, comment in columns.result_rows), "every column carries a comment"


def test_a_migration_edited_after_it_was_applied_is_refused(database_client: Client) -> None:
    apply_migrations(database_client)
    edited = [Migration(m.version, m.name, m.sql + "\n-- edited\n") for m in load_migrations()]
    with pytest.raises(MigrationError, match="changed after it was applied"):
        apply_migrations(database_client, edited)


def test_a_database_migrated_by_a_newer_build_is_refused(database_client: Client) -> None:
    extra = Migration(
        len(load_migrations()) + 1, "9999_future.sql", "CREATE TABLE IF NOT EXISTS future (x UInt8) ENGINE = Log;"
    )
    apply_migrations(database_client, [*load_migrations(), extra])
    with pytest.raises(MigrationError, match="newer version"):
        apply_migrations(database_client)


# ---- serve --skip-migrations: the schema must be current ---------------------------------------------------


def test_schema_check_reports_how_far_behind_the_database_is(database_client: Client) -> None:
    migrations = load_migrations()
    database = database_client.database
    assert database is not None
    needed = len(migrations)
    with pytest.raises(MigrationError, match=f"^the database schema is at 0, this build needs {needed}: run `feedback"):
        check_schema_current(database_client, database)
    apply_migrations(database_client, migrations[:5])
    with pytest.raises(MigrationError, match=f"^the database schema is at 5, this build needs {needed}: run `feedback"):
        check_schema_current(database_client, database)
    apply_migrations(database_client)
    assert check_schema_current(database_client, database) == needed
    edited = [*migrations[:-1], Migration(needed, migrations[-1].name, migrations[-1].sql + "\n-- edited\n")]
    with pytest.raises(MigrationError, match="changed after it was applied"):
        check_schema_current(database_client, database, edited)


def test_schema_check_of_a_database_that_does_not_exist_creates_nothing(database_client: Client) -> None:
    missing = f"missing_{uuid.uuid4().hex[:8]}"
    with pytest.raises(MigrationError, match="schema is at 0"):
        check_schema_current(database_client, missing)
    assert database_client.query(
        "SELECT count() FROM system.databases WHERE name = {n:String}", {"n": missing}
    ).result_rows == [(0,)]


def test_a_single_node_database_is_refused_in_cluster_mode_before_any_ddl(database_client: Client) -> None:
    apply_migrations(database_client)
    database = database_client.database
    assert database is not None
    cluster = Cluster(name="prod", database=database)
    with pytest.raises(MigrationError, match="migrated without a cluster"):
        check_schema_current(database_client, database, cluster=cluster)
    # Refused before the first ON CLUSTER statement, which this engine (no clusters) would fail on differently.
    with pytest.raises(MigrationError, match=r"migrated without a cluster .* not Distributed"):
        apply_migrations(database_client, cluster=cluster)


async def test_check_schema_refuses_a_fresh_database_and_accepts_a_migrated_one(engine_dir: Path) -> None:
    database = f"skip_tests_{uuid.uuid4().hex[:8]}"
    engine = ClickHouseEngine(EngineConfig(data_dir=engine_dir, database=database))
    try:
        with pytest.raises(MigrationError, match=r"at 0, this build needs \d+: run `feedback migrate` first"):
            await check_schema(engine)
        await migrate(engine)
        assert await check_schema(engine) == len(load_migrations())
    finally:
        await engine.run(lambda client: client.command(f"DROP DATABASE IF EXISTS `{database}`"))
        await asyncio.to_thread(engine.close)


def test_serve_with_skip_migrations_refuses_an_old_schema_and_serves_a_current_one(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    refused = ServerProcess(data_dir, extra_args=["--skip-migrations"]).launch()
    try:
        assert refused.wait() == 1
    finally:
        refused.kill()
    needed = len(load_migrations())
    assert f"the database schema is at 0, this build needs {needed}: run `feedback migrate` first" in (
        refused.log_text()
    )
    assert run_cli(["migrate", "--data-dir", str(data_dir)], cwd=tmp_path).returncode == 0
    with ServerProcess(data_dir, env={"FEEDBACK_SKIP_MIGRATIONS": "true"}) as server:
        events = [event for event in server.log_events() if event.get("event") in ("migrated", "schema_current")]
        assert events == [{**events[0], "event": "schema_current", "version": needed}]


# ---- 0012: feedback_rollups replaces feedback_aggregates and feedback_authors ------------------------------

_OLD_SNAPSHOT = (
    "SELECT model, model_version, key, source, sum(feedback_count), sum(thumbs_up), sum(thumbs_down), "
    "sum(comments), sum(corrections), mapFilter((k, n) -> n > 0, sumMap(labels)), "
    "mapFilter((k, n) -> n > 0, sumMap(scores)) FROM feedback_aggregates WHERE project = {project:String} "
    "AND minute >= {start:DateTime('UTC')} AND minute < {end:DateTime('UTC')} "
    "GROUP BY model, model_version, key, source HAVING sum(feedback_count) > 0"
)
_ALL_AUTHORS = (
    "SELECT model, model_version, key, source, uniqExact(author) FROM feedback WHERE project = {project:String} "
    "AND author != '' AND create_time >= {start:DateTime('UTC')} AND create_time < {end:DateTime('UTC')} "
    "GROUP BY model, model_version, key, source"
)


async def test_a_database_at_0011_with_data_gives_the_same_snapshots_after_0012(engine_dir: Path) -> None:
    """Feedback stored over days at 0011 (views into feedback_aggregates and feedback_authors), updated,
    deleted and voted over: after 0012 every snapshot equals what 0011's per-minute rows gave, distinct authors
    now counting the authors of deleted feedback too (a sketch: it never subtracts)."""
    database = f"upgrade12_{uuid.uuid4().hex[:8]}"
    engine = ClickHouseEngine(EngineConfig(data_dir=engine_dir, database=database))
    project = "upgrade"
    day = datetime(2026, 2, 1, tzinfo=UTC)
    moments = [day + timedelta(hours=h, minutes=m, seconds=s) for h, m, s in ((0, 0, 5), (7, 59, 59), (23, 59, 0))]
    moments += [day + timedelta(days=d, hours=h) for d, h in ((1, 0), (1, 13), (3, 2), (40, 5))]
    rows = []
    for index in range(140):
        kind = index % 3
        value = (
            FeedbackValue.of_thumb(Thumb.UP if index % 4 else Thumb.DOWN)
            if kind == 0
            else FeedbackValue.of_score(float(index % 5))
            if kind == 1
            else FeedbackValue.of_label("billing" if index % 2 else "spam")
        )
        moment = moments[index % len(moments)] + timedelta(minutes=index % 90)
        feedback = Feedback(
            project,
            f"old-{index}",
            f"trace-{index % 9}",
            ("thumbs", "quality", "topic")[kind],
            value,
            model="bot",
            model_version=f"v{index % 2 + 1}",
            comment="why" if index % 5 == 0 else "",
            correction="fix" if index % 7 == 0 else "",
            source=Source.REVIEWER if kind else Source.USER,
            author=f"user-{index}" if kind == 0 else f"rev-{index % 6}",
            create_time=moment,
            update_time=moment,
            revision=1,
        )
        rows.append(to_row(feedback, fingerprint=""))
    try:
        engine.create_database()
        previous = [m for m in load_migrations() if m.version <= 11]
        await engine.run(lambda client: apply_migrations(client, previous))

        def load(client: Client) -> None:
            insert_feedback_rows(client, RowBlock.of_rows(rows))
            insert_changes(client, RowBlock.of_rows(rows))  # 0011's views: feedback_aggregates, feedback_authors, ...

        await engine.run(load)
        # Updates, deletes and vote moves of the old feedback, written by the store as at 0011.
        store = ClickHouseFeedbackStore(engine)
        store.start()
        operations = FeedbackOperations(store)
        for index in range(0, 140, 9):
            await operations.delete(project, f"old-{index}")
        for index in (i for i in range(1, 140, 11) if i % 9):  # not the deleted
            await operations.update(
                FeedbackInput(project=project, feedback_id=f"old-{index}", comment="later"), ["comment"]
            )
        for index in range(3, 140, 12):  # a new vote by the same user on the same trace replaces the old one
            await operations.create(
                FeedbackInput(
                    project=project,
                    trace_id=f"trace-{index % 9}",
                    key="thumbs",
                    value_kind=ValueKind.THUMB,
                    thumb=int(Thumb.DOWN),
                    source=int(Source.USER),
                    author=f"user-{index}",
                    model="bot",
                    model_version=f"v{index % 2 + 1}",
                )
            )
        await store.close()

        far = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
        ranges = [
            far,
            (day + timedelta(hours=7, minutes=30), day + timedelta(days=3, hours=2, minutes=45)),
            (day + timedelta(minutes=1), day + timedelta(days=1, hours=13, minutes=1)),
            (day + timedelta(days=1), day + timedelta(days=2)),
        ]

        def old_snapshots(client: Client) -> list[dict[tuple[Any, ...], tuple[Any, ...]]]:
            found = []
            for start, end in ranges:
                parameters = {"project": project, "start": start, "end": end}
                rows = client.query(_OLD_SNAPSHOT, parameters=parameters).result_rows
                found.append({tuple(row[:4]): tuple(row[4:]) for row in rows})
            return found

        before = await engine.run(old_snapshots)
        assert [m.version for m in await migrate(engine)] == [12]

        def tables(client: Client) -> set[str]:
            return {
                str(r[0])
                for r in client.query("SELECT name FROM system.tables WHERE database = currentDatabase()").result_rows
            }

        names = await engine.run(tables)
        assert "feedback_rollups" in names
        assert not names & {"feedback_aggregates", "feedback_authors", "feedback_aggregates_mv", "feedback_authors_mv"}
        store = ClickHouseFeedbackStore(engine)
        assert (await store.check_derived(CheckScope(project=project), apply=False)).consistent
        group_by = (GroupField.MODEL, GroupField.MODEL_VERSION, GroupField.KEY, GroupField.SOURCE)
        for (start, end), old in zip(ranges, before, strict=True):
            scope = FeedbackScope(
                project=project,
                start_time=None if (start, end) == far else start,
                end_time=None if (start, end) == far else end,
            )
            new = await store.aggregate(AggregateQuery(scope, group_by))
            authors = {tuple(r[:4]): r[4] for r in await engine.run(partial(_all_authors, project, start, end))}
            got = {}
            for counts in new:
                key = _group_of(counts)
                scores = {struct_bits(score): n for score, n in counts.scores.items()}
                got[key] = (
                    counts.count,
                    counts.thumbs_up,
                    counts.thumbs_down,
                    counts.comments,
                    counts.corrections,
                    dict(counts.labels),
                    scores,
                )
                assert counts.distinct_authors == authors[key], (key, start, end)
            assert got, (start, end)
            want = {key: (*value[:5], dict(value[5]), dict(value[6])) for key, value in old.items()}
            assert got == want, (start, end)
            # Bucketed by day and by hour: every bucket sums to the range's total.
            for bucket in (TimeBucket.DAY, TimeBucket.HOUR):
                buckets = await store.aggregate(AggregateQuery(scope, group_by, bucket))
                totals: dict[tuple[Any, ...], int] = {}
                for counts in buckets:
                    key = _group_of(counts)
                    totals[key] = totals.get(key, 0) + counts.count
                assert totals == {key: value[0] for key, value in got.items()}, (start, end, bucket)
    finally:
        await engine.run(lambda client: client.command(f"DROP DATABASE IF EXISTS `{database}`"))
        await asyncio.to_thread(engine.close)


def _all_authors(project: str, start: datetime, end: datetime, client: Client) -> Sequence[Sequence[Any]]:
    parameters = {"project": project, "start": start, "end": end}
    return client.query(_ALL_AUTHORS, parameters=parameters).result_rows


def _group_of(counts: GroupCounts) -> tuple[str, str, str, str]:
    key = counts.key
    assert key.source is not None
    return (key.model, key.model_version, key.key, key.source.name.lower())


def struct_bits(score: float) -> int:
    """The IEEE-754 bits of a score, as feedback_aggregates keyed scores."""
    bits: int = struct.unpack("<Q", struct.pack("<d", score))[0]
    return bits
