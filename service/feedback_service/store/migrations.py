"""Numbered SQL migrations, applied in order and recorded in ClickHouse.

Files are ``migrations/NNNN_name.sql``, numbered from 0001 without gaps. A file
holds one or more statements, each ending with ``;`` at the end of a line.
Every statement must be idempotent (``IF NOT EXISTS``): a migration cut off
half-way is simply run again. An applied file must never change: its checksum
is recorded and checked on every run. There are no automatic down-migrations.

On a cluster the same files are rendered ``ON CLUSTER`` (see :mod:`cluster_ddl`):
the checksums stay those of the files, whichever way they were run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

import structlog
from clickhouse_connect.driver.client import Client

from feedback_service.store.cluster_ddl import (
    SYNC_INSERT_SETTING,
    Cluster,
    ClusterDDLError,
    create_database_statement,
    render_statement,
    settings_advice,
)
from feedback_service.store.engine import ClickHouseEngine

_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")
_STATEMENT_END = re.compile(r";[ \t]*(?:\n|$)")
_COMMENT_LINE = re.compile(r"^\s*--.*$", re.MULTILINE)

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32 COMMENT 'Number of the migration file',
    name String COMMENT 'Name of the migration file',
    checksum String COMMENT 'SHA-256 of the file as applied',
    applied_at DateTime64(6, 'UTC') COMMENT 'When it was applied'
)
ENGINE = ReplacingMergeTree
ORDER BY version
COMMENT 'Schema migrations applied to this database'
"""


_log = structlog.get_logger("feedback_service.store")


class MigrationError(Exception):
    """The migration files or the recorded history are inconsistent."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        chunks = (chunk.strip() for chunk in _STATEMENT_END.split(self.sql))
        return [chunk for chunk in chunks if _COMMENT_LINE.sub("", chunk).strip()]


def load_migrations() -> list[Migration]:
    """The packaged migrations in order; refuses gaps and stray files."""
    found: list[Migration] = []
    for entry in resources.files("feedback_service.store").joinpath("migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.fullmatch(entry.name)
        if not match:
            raise MigrationError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        found.append(Migration(version=int(match[1]), name=entry.name, sql=entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    expected = list(range(1, len(found) + 1))
    if [m.version for m in found] != expected:
        raise MigrationError(f"migration numbers must run 1..N without gaps, found {[m.version for m in found]}")
    return found


def render_statements(migration: Migration, cluster: Cluster | None) -> list[str]:
    """The statements to run: the file's own on a single node, rendered ``ON CLUSTER`` on a cluster."""
    statements = migration.statements()
    if cluster is None:
        return statements
    try:
        return [rendered for statement in statements for rendered in render_statement(statement, cluster)]
    except ClusterDDLError as error:
        raise MigrationError(f"{migration.name} cannot run on a cluster: {error}") from error


def ledger_statements(cluster: Cluster | None) -> list[str]:
    """DDL of the ``schema_migrations`` ledger; on a cluster a Distributed table every node reads alike."""
    if cluster is None:
        return [LEDGER_DDL]
    return render_statements(Migration(version=0, name="schema_migrations", sql=LEDGER_DDL), cluster)


def migrate_database(engine: ClickHouseEngine, *, cluster: str | None = None) -> list[Migration]:
    """Create the engine's database and apply pending migrations; with a cluster name, ON CLUSTER.

    Blocking: run it in a thread.
    """
    target = None if cluster is None else Cluster(name=cluster, database=engine.config.database)
    if target is None:
        engine.create_database()
    else:
        admin = engine.connect(database=None)
        try:
            admin.command(create_database_statement(target))
        finally:
            admin.close()
    client = engine.connect(database=engine.config.database)
    try:
        if target is not None:
            _warn_about_settings(client)
        return apply_migrations(client, cluster=target)
    finally:
        client.close()


def check_database_schema(engine: ClickHouseEngine, *, cluster: str | None = None) -> int:
    """Raise MigrationError unless the engine's database has every migration; returns its version.

    For ``serve --skip-migrations``: reads only, creates nothing, not even the database. Blocking.
    """
    database = engine.config.database
    target = None if cluster is None else Cluster(name=cluster, database=database)
    client = engine.connect(database=None)  # the database may not exist yet
    try:
        if target is not None:
            _warn_about_settings(client)
        return check_schema_current(client, database, cluster=target)
    finally:
        client.close()


def _warn_about_settings(client: Client) -> None:
    for advice in settings_advice(client):
        _log.warning("clickhouse_cluster_settings", advice=advice)


def apply_migrations(
    client: Client, migrations: list[Migration] | None = None, *, cluster: Cluster | None = None
) -> list[Migration]:
    """Apply what is not applied yet, in order; returns what was applied (empty when up to date).

    ``client`` is connected to the database to migrate; with ``cluster`` every statement runs ON CLUSTER.
    """
    migrations = load_migrations() if migrations is None else migrations
    _check_mode(_ledger_engine(client, None), cluster, "the database")
    for statement in ledger_statements(cluster):
        client.command(statement)
    applied = _applied(client, "schema_migrations")
    _check_history(applied, migrations)
    pending = [m for m in migrations if m.version not in applied]
    for migration in pending:
        for statement in render_statements(migration, cluster):
            client.command(statement)
        client.insert(
            "schema_migrations",
            [[migration.version, migration.name, migration.checksum, datetime.now(UTC)]],
            column_names=["version", "name", "checksum", "applied_at"],
            settings=None if cluster is None else {SYNC_INSERT_SETTING: 1},
        )
    return pending


def check_schema_current(
    client: Client, database: str, migrations: list[Migration] | None = None, *, cluster: Cluster | None = None
) -> int:
    """Raise MigrationError unless ``database`` has every migration of this build; returns its version.

    Reads only, creates nothing (for ``serve --skip-migrations``): ``client`` may be connected to any
    database, ``database`` need not exist. ``database`` is an allow-listed identifier (EngineConfig).
    """
    migrations = load_migrations() if migrations is None else migrations
    engine = _ledger_engine(client, database)
    applied: dict[int, str] = {}
    if engine is not None:
        _check_mode(engine, cluster, f"the database {database}")
        applied = _applied(client, f"`{database}`.schema_migrations")
    _check_history(applied, migrations)
    if any(m.version not in applied for m in migrations):
        at = next(v for v in range(1, len(migrations) + 2) if v not in applied) - 1
        raise MigrationError(
            f"the database schema is at {at}, this build needs {len(migrations)}: run `feedback migrate` first"
        )
    return len(migrations)


def _applied(client: Client, ledger: str) -> dict[int, str]:
    rows = client.query(f"SELECT version, checksum FROM {ledger} FINAL").result_rows
    return {int(version): str(checksum) for version, checksum in rows}


def _check_history(applied: dict[int, str], migrations: list[Migration]) -> None:
    known = {m.version: m for m in migrations}
    newer = sorted(set(applied) - set(known))
    if newer:
        raise MigrationError(
            f"the database has migrations {newer} that this build does not know: it was migrated by a newer version"
        )
    for version, checksum in applied.items():
        if known[version].checksum != checksum:
            raise MigrationError(
                f"migration {known[version].name} changed after it was applied; add a new migration instead"
            )


def _ledger_engine(client: Client, database: str | None) -> str | None:
    """The table engine of ``schema_migrations`` (None when missing); ``database=None``: the client's."""
    where = "currentDatabase()" if database is None else "{database:String}"
    rows = client.query(
        f"SELECT engine FROM system.tables WHERE database = {where} AND name = 'schema_migrations'",
        parameters={} if database is None else {"database": database},
    ).result_rows
    return str(rows[0][0]) if rows else None


def _check_mode(engine: str | None, cluster: Cluster | None, where: str) -> None:
    """A database is migrated either on a single node or on a cluster, never both ways."""
    if cluster is not None and engine not in (None, "Distributed"):
        raise MigrationError(
            f"{where} was migrated without a cluster (schema_migrations is a {engine} table, not Distributed): "
            "cluster mode needs a database of its own; unset FEEDBACK_CLICKHOUSE_CLUSTER or choose another "
            "FEEDBACK_CLICKHOUSE_DATABASE"
        )
    if cluster is None and engine == "Distributed":
        raise MigrationError(
            f"{where} was migrated in cluster mode (schema_migrations is a Distributed table): set "
            "FEEDBACK_CLICKHOUSE_CLUSTER to its cluster"
        )
