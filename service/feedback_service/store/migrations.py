"""Numbered SQL migrations, applied in order and recorded in ClickHouse.

Files are ``migrations/NNNN_name.sql``, numbered from 0001 without gaps. A file
holds one or more statements, each ending with ``;`` at the end of a line.
Every statement must be idempotent (``IF NOT EXISTS``): a migration cut off
half-way is simply run again. An applied file must never change: its checksum
is recorded and checked on every run. There are no automatic down-migrations.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

from clickhouse_connect.driver.client import Client

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


def apply_migrations(client: Client, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply what is not applied yet, in order; returns what was applied (empty when up to date)."""
    migrations = load_migrations() if migrations is None else migrations
    client.command(LEDGER_DDL)
    rows = client.query("SELECT version, checksum FROM schema_migrations FINAL").result_rows
    applied: dict[int, str] = {int(version): str(checksum) for version, checksum in rows}
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
    pending = [m for m in migrations if m.version not in applied]
    for migration in pending:
        for statement in migration.statements():
            client.command(statement)
        client.insert(
            "schema_migrations",
            [[migration.version, migration.name, migration.checksum, datetime.now(UTC)]],
            column_names=["version", "name", "checksum", "applied_at"],
        )
    return pending
