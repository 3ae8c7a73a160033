"""Cluster mode's DDL: the packaged migrations rendered ON CLUSTER, as Replicated local tables with
Distributed tables over them.

What runs here: the rendering itself, checked statement by statement against the expected engines, ZooKeeper
paths, sharding keys and materialized-view sources and targets; every rendered statement is parsed by the
embedded engine's own parser (``formatQuery``, which parses any statement without running it; ``EXPLAIN
SYNTAX`` in ClickHouse 26.9 accepts only CREATE TABLE and SELECT and would analyse the INSERTs against tables
that do not exist); the local tables, views and ALTERs, once the cluster parts are taken out again, are the
single-node statements exactly; the sharding keys are evaluated against the real single-node tables.

What cannot run here: the cluster DDL itself. No ClickHouse server or Keeper installs on this machine (see
DESIGN.md), and the embedded engine has no clusters (``system.clusters`` is empty, ``ON CLUSTER`` and
``Distributed`` need one, Replicated tables need Keeper). A real cluster run is the next step before relying
on cluster mode in production.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client

from feedback_service.config import ConfigError, Settings
from feedback_service.store.cluster_ddl import (
    SHARDING_KEYS,
    Cluster,
    ClusterDDLError,
    create_database_statement,
    render_statement,
    settings_advice,
)
from feedback_service.store.migrations import (
    LEDGER_DDL,
    Migration,
    MigrationError,
    apply_migrations,
    check_schema_current,
    ledger_statements,
    load_migrations,
    render_statements,
)
from tests.support.server_process import run_cli

CLUSTER = Cluster(name="feedback_cluster", database="feedback")
ON_CLUSTER = "ON CLUSTER `feedback_cluster`"
ZK = "/clickhouse/tables/{shard}/{database}/"

# Every table of the migrations (and the ledger): the engine of its local table (Replicated, or Null for a table
# that keeps nothing), the original engine arguments after the ZooKeeper path and replica name, and the sharding
# key of its Distributed table.
EXPECTED_TABLES = {
    "schema_migrations": ("ReplicatedReplacingMergeTree", None, "cityHash64(version)"),
    "feedback": ("ReplicatedReplacingMergeTree", "revision, is_deleted", "cityHash64(project, trace_id)"),
    "feedback_aggregates": (
        "ReplicatedAggregatingMergeTree",
        None,
        "cityHash64(project, model, model_version, key)",
    ),
    "user_votes": ("ReplicatedReplacingMergeTree", "create_time, is_deleted", "cityHash64(project, trace_id)"),
    "api_keys": ("ReplicatedReplacingMergeTree", "revision", "cityHash64(key_id)"),
    "feedback_by_time": ("ReplicatedReplacingMergeTree", "revision, is_deleted", "cityHash64(project, trace_id)"),
    "feedback_authors": ("ReplicatedAggregatingMergeTree", None, "cityHash64(project, model, model_version, key)"),
    "feedback_keys": ("ReplicatedReplacingMergeTree", "revision", "cityHash64(project, name)"),
    "annotation_queues": ("ReplicatedReplacingMergeTree", None, "cityHash64(project, queue_id)"),
    "queue_items": ("ReplicatedReplacingMergeTree", None, "cityHash64(project, queue_id, item_id)"),
    "queue_claims": ("ReplicatedReplacingMergeTree", "update_time", "cityHash64(project, queue_id, item_id)"),
    "derived_checkpoint": ("ReplicatedReplacingMergeTree", "record_time", "cityHash64(name)"),
    "feedback_changes": ("Null", None, "cityHash64(project, trace_id)"),
    "feedback_rollups": ("ReplicatedAggregatingMergeTree", None, "cityHash64(project, model, model_version, key)"),
}
# Tables a later migration drops (0012: feedback_rollups replaces them).
DROPPED_TABLES = {"feedback_aggregates", "feedback_authors"}
# Every materialized view the migrations create, as last created: the local table it writes and the local table it
# reads, on each node (0010 re-creates them over feedback_changes; 0012 drops the two it replaces).
EXPECTED_VIEWS = {
    "feedback_aggregates_mv": ("feedback_aggregates_local", "feedback_changes_local"),
    "user_votes_mv": ("user_votes_local", "feedback_changes_local"),
    "feedback_by_time_mv": ("feedback_by_time_local", "feedback_changes_local"),
    "feedback_authors_mv": ("feedback_authors_local", "feedback_changes_local"),
    "feedback_rollups_mv": ("feedback_rollups_local", "feedback_changes_local"),
}

_LOCAL_TABLE = re.compile(
    r"CREATE TABLE IF NOT EXISTS `feedback`\.`(\w+)_local` ON CLUSTER `feedback_cluster`[\s\S]*?\n"
    r"ENGINE = (\w+)(?:\('([^']*)', '\{replica\}'(?:, ([^\n]*))?\))?(?:\n|$)"
)
_DISTRIBUTED_TABLE = re.compile(
    r"CREATE TABLE IF NOT EXISTS `feedback`\.`(\w+)` ON CLUSTER `feedback_cluster` AS `feedback`\.`(\w+)`\n"
    r"ENGINE = Distributed\('feedback_cluster', 'feedback', '(\w+)', ([^\n]*)\)(?:\nCOMMENT '.*')?$"
)
_VIEW = re.compile(
    r"CREATE MATERIALIZED VIEW IF NOT EXISTS `feedback`\.`(\w+)` ON CLUSTER `feedback_cluster` "
    r"TO `feedback`\.`(\w+)` AS\n"
)


def all_rendered(cluster: Cluster = CLUSTER) -> list[str]:
    """Everything cluster mode runs for a new database, in order: database, ledger, then every migration."""
    statements = [create_database_statement(cluster), *ledger_statements(cluster)]
    for migration in load_migrations():
        statements += render_statements(migration, cluster)
    return statements


@pytest.fixture(scope="module")
def parser(engine_dir: Path) -> Iterator[Client]:
    """The embedded engine, used only to parse statements (formatQuery runs nothing)."""
    client = clickhouse_connect.get_client(interface="chdb", path=str(engine_dir))
    yield client
    client.close()


def canonical(client: Client, statement: str) -> str:
    """The statement as ClickHouse's parser formats it: proves it parses, and compares without whitespace noise."""
    return str(client.query("SELECT formatQuery({q:String})", parameters={"q": statement}).result_rows[0][0])


# ---- single node: exactly the files ---------------------------------------------------------------------


def test_single_node_runs_the_migration_files_statements_unchanged() -> None:
    for migration in load_migrations():
        assert render_statements(migration, None) == migration.statements()
    assert ledger_statements(None) == [LEDGER_DDL]


# ---- cluster: what gets created -------------------------------------------------------------------------


def test_every_table_becomes_a_local_table_and_a_distributed_table_over_it() -> None:
    statements = all_rendered()
    local: dict[str, tuple[str, str | None]] = {}
    distributed: dict[str, str] = {}
    for statement in statements:
        if found := _LOCAL_TABLE.match(statement):
            name, engine, path, arguments = found.groups()
            if engine == "Null":
                assert path is None, "a Null table keeps nothing: nothing to replicate"
                assert arguments is None
            else:
                assert path == f"{ZK}{name}_local", "one ZooKeeper path per shard, database and table"
            local[name] = (engine, arguments)
        elif found := _DISTRIBUTED_TABLE.match(statement):
            name, structure_of, underlying, key = found.groups()
            assert structure_of == underlying == f"{name}_local"
            distributed[name] = key
    assert {name: (*local[name], distributed[name]) for name in local} == EXPECTED_TABLES
    assert set(distributed) == set(EXPECTED_TABLES)
    assert set(SHARDING_KEYS) == set(EXPECTED_TABLES), "a sharding key for every table, and only for those"


def test_local_table_comes_first_and_the_distributed_table_keeps_the_original_name_and_comment() -> None:
    (migration,) = [m for m in load_migrations() if m.name == "0001_feedback.sql"]
    local, distributed = render_statements(migration, CLUSTER)
    assert local.startswith(f"CREATE TABLE IF NOT EXISTS `feedback`.`feedback_local` {ON_CLUSTER}\n(\n")
    assert "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/feedback_local', " in local
    assert "'{replica}', revision, is_deleted)\nORDER BY (project, feedback_id)\nCOMMENT 'Feedback on AI" in local
    assert distributed == (
        f"CREATE TABLE IF NOT EXISTS `feedback`.`feedback` {ON_CLUSTER} AS `feedback`.`feedback_local`\n"
        "ENGINE = Distributed('feedback_cluster', 'feedback', 'feedback_local', cityHash64(project, trace_id))\n"
        "COMMENT 'Feedback on AI outputs; one row per revision, highest revision wins'"
    )


def test_a_table_created_as_another_copies_the_other_local_table() -> None:
    (migration,) = [m for m in load_migrations() if m.name == "0005_feedback_by_time.sql"]
    local = render_statements(migration, CLUSTER)[0]
    assert local.startswith(
        f"CREATE TABLE IF NOT EXISTS `feedback`.`feedback_by_time_local` {ON_CLUSTER} AS `feedback`.`feedback_local`\n"
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/feedback_by_time_local', "
        "'{replica}', revision, is_deleted)\nORDER BY (project, create_time, feedback_id)\n"
    )


def test_a_null_table_becomes_a_local_null_table_on_every_node_and_a_distributed_table_over_it() -> None:
    (migration,) = [m for m in load_migrations() if m.name == "0010_derive_from_changes.sql"]
    local, distributed = render_statements(migration, CLUSTER)[:2]
    comment = (
        "COMMENT 'Feedback rows on their way to the derived tables; keeps nothing, its views fill the derived tables'"
    )
    # Not Replicated (Null has no Replicated form, and keeps nothing to replicate): no ZooKeeper path.
    assert local == (
        f"CREATE TABLE IF NOT EXISTS `feedback`.`feedback_changes_local` {ON_CLUSTER} AS `feedback`.`feedback_local`\n"
        f"ENGINE = Null\n{comment}"
    )
    # Sharded like feedback: a row reaches the shard where its feedback is, whose views write the local tables.
    assert distributed == (
        f"CREATE TABLE IF NOT EXISTS `feedback`.`feedback_changes` {ON_CLUSTER} "
        "AS `feedback`.`feedback_changes_local`\n"
        "ENGINE = Distributed('feedback_cluster', 'feedback', 'feedback_changes_local', "
        f"cityHash64(project, trace_id))\n{comment}"
    )
    assert SHARDING_KEYS["feedback_changes"] == SHARDING_KEYS["feedback"]
    # A column list and Null() render the same way.
    local, distributed = render_statement("CREATE TABLE feedback_changes (project String) ENGINE = Null()", CLUSTER)
    assert local == f"CREATE TABLE `feedback`.`feedback_changes_local` {ON_CLUSTER}\n(project String)\nENGINE = Null"
    assert distributed.startswith(f"CREATE TABLE `feedback`.`feedback_changes` {ON_CLUSTER} AS ")
    assert "Replicated" not in local + distributed


def test_drop_view_drops_the_view_on_every_node() -> None:
    assert render_statement("DROP VIEW IF EXISTS feedback_aggregates_mv", CLUSTER) == [
        f"DROP VIEW IF EXISTS `feedback`.`feedback_aggregates_mv` {ON_CLUSTER}"
    ]
    assert render_statement("drop view `user_votes_mv`", CLUSTER) == [
        f"DROP VIEW `feedback`.`user_votes_mv` {ON_CLUSTER}"
    ]


def test_drop_table_drops_the_distributed_table_then_the_local_tables_on_every_node() -> None:
    assert render_statement("DROP TABLE IF EXISTS feedback_authors", CLUSTER) == [
        f"DROP TABLE IF EXISTS `feedback`.`feedback_authors` {ON_CLUSTER}",
        f"DROP TABLE IF EXISTS `feedback`.`feedback_authors_local` {ON_CLUSTER}",
    ]
    with pytest.raises(ClusterDDLError, match="no sharding key"):
        render_statement("DROP TABLE scratch", CLUSTER)
    with pytest.raises(ClusterDDLError, match="nothing is understood after the name"):
        render_statement("DROP TABLE feedback_authors SYNC", CLUSTER)


def test_rollups_replace_the_per_minute_and_per_author_tables_on_the_cluster() -> None:
    (migration,) = [m for m in load_migrations() if m.name == "0012_rollups.sql"]
    rendered = render_statements(migration, CLUSTER)
    assert [s.split("\n", 1)[0] for s in rendered] == [
        f"CREATE TABLE IF NOT EXISTS `feedback`.`feedback_rollups_local` {ON_CLUSTER}",
        f"CREATE TABLE IF NOT EXISTS `feedback`.`feedback_rollups` {ON_CLUSTER} AS `feedback`.`feedback_rollups_local`",
        "INSERT INTO `feedback`.`feedback_rollups` SETTINGS insert_distributed_sync = 1",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS `feedback`.`feedback_rollups_mv` {ON_CLUSTER} "
        "TO `feedback`.`feedback_rollups_local` AS",
        f"DROP VIEW IF EXISTS `feedback`.`feedback_aggregates_mv` {ON_CLUSTER}",
        f"DROP VIEW IF EXISTS `feedback`.`feedback_authors_mv` {ON_CLUSTER}",
        f"DROP TABLE IF EXISTS `feedback`.`feedback_aggregates` {ON_CLUSTER}",
        f"DROP TABLE IF EXISTS `feedback`.`feedback_aggregates_local` {ON_CLUSTER}",
        f"DROP TABLE IF EXISTS `feedback`.`feedback_authors` {ON_CLUSTER}",
        f"DROP TABLE IF EXISTS `feedback`.`feedback_authors_local` {ON_CLUSTER}",
    ]
    # The backfill reads every shard's feedback (FINAL for the sums, every revision for the authors sketch).
    assert rendered[2].count("FROM `feedback`.`feedback`") == 2
    assert "ARRAY JOIN [" in rendered[3]
    assert re.findall(r"\bFROM (\S+)", rendered[3]) == ["`feedback`.`feedback_changes_local`"]


def test_views_re_created_over_the_null_table_read_its_local_table_on_each_node() -> None:
    (migration,) = [m for m in load_migrations() if m.name == "0010_derive_from_changes.sql"]
    rendered = render_statements(migration, CLUSTER)[2:]
    views = ["feedback_aggregates_mv", "user_votes_mv", "feedback_by_time_mv", "feedback_authors_mv"]
    assert [s.split("\n", 1)[0] for s in rendered] == [
        line
        for view in views
        for line in (
            f"DROP VIEW IF EXISTS `feedback`.`{view}` {ON_CLUSTER}",
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS `feedback`.`{view}` {ON_CLUSTER} "
            f"TO `feedback`.`{EXPECTED_VIEWS[view][0]}` AS",
        )
    ]
    for create in rendered[1::2]:
        assert re.findall(r"\bFROM (\S+)", create) == ["`feedback`.`feedback_changes_local`"], create


def test_materialized_views_read_and_write_the_local_tables_on_each_node() -> None:
    views: dict[str, tuple[str, str]] = {}
    for statement in all_rendered():
        if found := _VIEW.match(statement):
            sources = re.findall(r"\bFROM (\S+)", statement)
            assert len(sources) == 1, statement
            views[found[1]] = (found[2], sources[0].removeprefix("`feedback`.").strip("`"))
    assert views == EXPECTED_VIEWS


def test_alter_changes_columns_of_both_tables_and_indexes_of_the_local_table_only() -> None:
    migrations = {m.name: m for m in load_migrations()}
    aggregates = render_statements(migrations["0002_aggregates.sql"], CLUSTER)
    assert aggregates[0].startswith(f"ALTER TABLE `feedback`.`feedback_local` {ON_CLUSTER}\n    ADD COLUMN IF NOT")
    assert aggregates[1].startswith(f"ALTER TABLE `feedback`.`feedback` {ON_CLUSTER}\n    ADD COLUMN IF NOT")
    assert aggregates[0].split("\n", 1)[1] == aggregates[1].split("\n", 1)[1], "the same columns on both"
    assert aggregates[0].count("ADD COLUMN") == 7
    assert aggregates[2] == (
        f"ALTER TABLE `feedback`.`feedback_local` {ON_CLUSTER}\n"
        "    ADD INDEX IF NOT EXISTS create_time_minmax create_time TYPE minmax GRANULARITY 1"
    )
    assert "ADD INDEX" not in aggregates[3], "a Distributed table has no indexes"
    audit = render_statements(migrations["0004_audit.sql"], CLUSTER)
    assert [s.split("\n", 1)[0] for s in audit] == [
        f"ALTER TABLE `feedback`.`feedback_local` {ON_CLUSTER}",
        f"ALTER TABLE `feedback`.`feedback` {ON_CLUSTER}",
    ]


def test_backfills_insert_through_the_distributed_tables_synchronously() -> None:
    inserts = [s for s in all_rendered() if s.startswith("INSERT")]
    assert [s.split("\n", 1)[0] for s in inserts] == [
        f"INSERT INTO `feedback`.`{table}` SETTINGS insert_distributed_sync = 1"
        for table in ("feedback_aggregates", "user_votes", "feedback_by_time", "feedback_authors", "feedback_rollups")
    ]
    for insert in inserts:
        assert "FROM `feedback`.`feedback`" in insert, "read every shard's feedback"
        assert "_local" not in insert


def test_every_ddl_statement_runs_on_the_cluster_and_names_tables_with_their_database() -> None:
    tables = "|".join(sorted(list(SHARDING_KEYS) + [f"{t}_local" for t in SHARDING_KEYS], key=len, reverse=True))
    bare = re.compile(rf"\b(?:FROM|JOIN|INTO|TO|AS|TABLE|EXISTS)\s+`?(?:{tables})\b")
    for statement in all_rendered(Cluster(name="feedback_cluster", database="cluster_db")):
        if not statement.startswith("INSERT"):
            assert ON_CLUSTER in statement.split("\n", 1)[0], statement
        assert not bare.search(statement), f"unqualified table in: {statement}"


def test_create_database_runs_on_the_cluster() -> None:
    assert create_database_statement(CLUSTER) == f"CREATE DATABASE IF NOT EXISTS `feedback` {ON_CLUSTER}"
    assert render_statement("CREATE DATABASE IF NOT EXISTS feedback", CLUSTER) == [create_database_statement(CLUSTER)]


# ---- cluster: proven against the engine's parser --------------------------------------------------------


def test_every_cluster_statement_parses(parser: Client) -> None:
    names_to_quote = Cluster(name="prod-eu.1", database="feedback_v2")
    for statement in all_rendered() + all_rendered(names_to_quote):
        canonical(parser, statement)  # raises on a syntax error


def test_local_tables_views_and_alters_are_the_single_node_statements_once_the_cluster_parts_are_removed(
    parser: Client,
) -> None:
    """Columns, codecs, indexes, ORDER BY, COMMENTs, view queries, ALTER commands: nothing else changed."""
    # A database name that appears nowhere else (not in comments such as 'as in feedback.key').
    cluster = Cluster(name="feedback_cluster", database="cluster_db")
    for migration in [Migration(0, "ledger", LEDGER_DDL), *load_migrations()]:
        rendered = iter(render_statements(migration, cluster))
        for original in migration.statements():
            first = next(rendered)
            if first.startswith(("CREATE TABLE", "DROP TABLE")) or (
                first.startswith("ALTER") and "ADD COLUMN" in first
            ):
                next(rendered)  # the Distributed table (or the local one dropped), its column changes: checked above
            assert canonical(parser, _single_node(canonical(parser, first))) == canonical(parser, original)
        assert next(rendered, None) is None


def _single_node(text: str) -> str:
    """A canonical cluster statement (database cluster_db) with the cluster parts taken out again."""
    text = text.replace(" ON CLUSTER feedback_cluster", "").replace("SETTINGS insert_distributed_sync = 1\n", "")
    text = re.sub(r"\bcluster_db\.(\w+?)(?:_local)?\b", r"\1", text)
    text = re.sub(r"Replicated(\w+)\('[^']*', '\{replica\}'\)", r"\1", text)
    return re.sub(r"Replicated(\w+)\('[^']*', '\{replica\}', ", r"\1(", text)


def test_sharding_keys_evaluate_on_the_real_tables(engine_dir: Path) -> None:
    name = f"sharding_{uuid.uuid4().hex[:8]}"
    admin = clickhouse_connect.get_client(interface="chdb", path=str(engine_dir))
    admin.command(f"CREATE DATABASE {name}")
    client = clickhouse_connect.get_client(interface="chdb", path=str(engine_dir), database=name)
    try:
        apply_migrations(client)
        for table, key in SHARDING_KEYS.items():
            if table in DROPPED_TABLES:
                continue
            # A Distributed sharding key: an integer expression of the table's own columns.
            assert client.query(f"SELECT toTypeName(any({key})) FROM {table}").result_rows == [("UInt64",)]
    finally:
        client.close()
        admin.command(f"DROP DATABASE {name}")
        admin.close()


# ---- what the renderer refuses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("CREATE TABLE IF NOT EXISTS scratch (x UInt8) ENGINE = MergeTree ORDER BY x", "no sharding key"),
        ("CREATE TABLE feedback (x UInt8) ENGINE = Log", "no Replicated form"),
        ("CREATE TABLE feedback (x UInt8) ENGINE = MergeTree ORDER BY x AS SELECT 1", "AS after ENGINE"),
        ("CREATE TABLE other.feedback (x UInt8) ENGINE = MergeTree ORDER BY x", "without a database"),
        ("CREATE TABLE feedback ON CLUSTER c (x UInt8) ENGINE = MergeTree ORDER BY x", "adds ON CLUSTER"),
        ("CREATE MATERIALIZED VIEW v AS SELECT * FROM feedback", "needs TO"),
        ("CREATE MATERIALIZED VIEW v TO api_keys AS SELECT * FROM feedback JOIN user_votes USING (project)", "one"),
        ("CREATE MATERIALIZED VIEW v TO api_keys AS SELECT * FROM numbers(3)", "no sharding key"),
        ("ALTER TABLE feedback DELETE WHERE project = 'x'", "cannot render 'DELETE WHERE'"),
        ("ALTER TABLE feedback_aggregates_mv MODIFY QUERY SELECT 1", "no sharding key"),
        ("INSERT INTO feedback VALUES (1)", "only INSERT INTO ... SELECT"),
        ("INSERT INTO api_keys SELECT * FROM feedback WHERE key_id IN user_votes", "a table after IN"),
        ("TRUNCATE TABLE feedback", "cannot render 'TRUNCATE TABLE feedback'"),
        ("CREATE TABLE scratch AS feedback ENGINE = Null", "no sharding key"),
        ("CREATE TABLE feedback_changes AS feedback ENGINE = Null(1)", "ENGINE = Null takes no arguments"),
        ("CREATE TABLE feedback_changes AS feedback ENGINE = Null ORDER BY x", "only COMMENT is understood"),
        ("CREATE TABLE feedback_changes AS feedback ENGINE = Null COMMENT x", "COMMENT must be a string literal"),
        ("DROP VIEW IF EXISTS feedback", "feedback is a table"),
        ("DROP VIEW v SYNC", "nothing is understood after the name"),
        ("DROP VIEW other.v", "without a database"),
        ("DROP VIEW v ON CLUSTER c", "adds ON CLUSTER"),
        ("CREATE VIEW v AS SELECT 1", "cannot render"),
        ("CREATE TABLE feedback (x String DEFAULT 'oops) ENGINE = MergeTree", "unterminated"),
    ],
)
def test_constructs_the_renderer_does_not_understand_are_refused(statement: str, message: str) -> None:
    with pytest.raises(ClusterDDLError, match=re.escape(message)):
        render_statement(statement, CLUSTER)


def test_a_refused_statement_names_its_migration_file() -> None:
    migration = Migration(9, "0009_scratch.sql", "CREATE TABLE IF NOT EXISTS scratch (x UInt8) ENGINE = Log;\n")
    with pytest.raises(MigrationError, match=r"^0009_scratch\.sql cannot run on a cluster: "):
        render_statements(migration, CLUSTER)
    assert render_statements(migration, None) == [migration.statements()[0]], "a single node runs it as it is"


def test_keywords_inside_strings_and_comments_are_left_alone() -> None:
    statement = (
        "-- FROM user_votes is only a comment\n"
        "INSERT INTO api_keys\nSELECT 'FROM feedback', `key_id` FROM `feedback_keys` /* JOIN queue_items */"
    )
    (rendered,) = render_statement(statement, CLUSTER)
    assert rendered == (
        "INSERT INTO `feedback`.`api_keys` SETTINGS insert_distributed_sync = 1\n"
        "SELECT 'FROM feedback', `key_id` FROM `feedback`.`feedback_keys`"
    )


def test_cluster_and_database_names_are_allow_listed() -> None:
    with pytest.raises(ValueError, match="cluster name"):
        Cluster(name="prod`; DROP", database="feedback")
    with pytest.raises(ValueError, match="database name"):
        Cluster(name="prod", database="feed-back")
    quoted = Cluster(name="prod-eu.1", database="feedback")
    assert quoted.on_cluster == "ON CLUSTER `prod-eu.1`"
    (_, distributed) = render_statement(
        "CREATE TABLE api_keys (key_id String) ENGINE = ReplacingMergeTree ORDER BY key_id", quoted
    )
    assert "Distributed('prod-eu.1', 'feedback', 'api_keys_local', cityHash64(key_id))" in distributed


# ---- the ledger and the settings on a cluster --------------------------------------------------------------


class _LedgerStub:
    """Answers the ledger's system.tables lookup with a Distributed table, as on a database made in cluster mode.

    The embedded engine cannot create a Distributed table (it has no cluster), so this stands in for it.
    """

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        assert "system.tables" in sql, sql
        return type("Result", (), {"result_rows": [("Distributed",)]})()


def test_a_database_migrated_on_a_cluster_is_refused_without_the_cluster_name() -> None:
    with pytest.raises(MigrationError, match=r"migrated in cluster mode .* set FEEDBACK_CLICKHOUSE_CLUSTER"):
        check_schema_current(cast(Client, _LedgerStub()), "feedback")


def test_settings_advice_names_what_a_cluster_needs(engine_dir: Path) -> None:
    defaults = clickhouse_connect.get_client(interface="chdb", path=str(engine_dir))
    configured = clickhouse_connect.get_client(
        interface="chdb",
        path=str(engine_dir),
        settings={"distributed_foreground_insert": 1, "distributed_product_mode": "global"},
    )
    try:
        advice = settings_advice(defaults)
        assert [line.split(" = ")[0] for line in advice] == [
            "set distributed_foreground_insert",
            "set distributed_product_mode",
        ]
        assert settings_advice(configured) == []
    finally:
        defaults.close()
        configured.close()


# ---- configuration ----------------------------------------------------------------------------------------


def test_a_cluster_name_without_a_server_url_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"FEEDBACK_CLICKHOUSE_CLUSTER .* needs FEEDBACK_CLICKHOUSE_URL"):
        Settings(clickhouse_cluster="prod")
    Settings(clickhouse_cluster="prod", clickhouse_url="http://localhost:8123")
    done = run_cli(["migrate", "--data-dir", str(tmp_path / "data"), "--clickhouse-cluster", "prod"], cwd=tmp_path)
    assert done.returncode == 2, done
    assert "needs FEEDBACK_CLICKHOUSE_URL" in done.stderr
    assert not (tmp_path / "data").exists(), "refused before anything was created"


def test_the_write_marker_watches_every_replica_on_a_cluster() -> None:
    # Not runnable here (no cluster); the single-node marker runs in every follow-stream test.
    from feedback_service.store.feedback_store import write_marker_sql

    single = write_marker_sql(None)
    clustered = write_marker_sql("prod-eu.1")
    assert "table = 'feedback_rollups'" in single
    assert "clusterAllReplicas('prod-eu.1', system.parts)" in clustered
    assert "table = 'feedback_rollups_local'" in clustered
    assert "sum(highest)" in clustered
