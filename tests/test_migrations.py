"""Numbered migrations: order, idempotence, refusal of edited or unknown history, and the schema check of
``serve --skip-migrations``. Cluster mode's DDL is in test_cluster_ddl.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client

from feedback_service.server import check_schema, migrate
from feedback_service.store.cluster_ddl import Cluster
from feedback_service.store.engine import ClickHouseEngine, EngineConfig
from feedback_service.store.migrations import (
    Migration,
    MigrationError,
    apply_migrations,
    check_schema_current,
    load_migrations,
)
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
