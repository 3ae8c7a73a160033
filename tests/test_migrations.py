"""Numbered migrations: order, idempotence, and refusal of edited or unknown history."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client

from feedback_service.store.migrations import Migration, MigrationError, apply_migrations, load_migrations


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
