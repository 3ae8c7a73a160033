"""Cluster mode: the packaged migrations rendered ``ON CLUSTER``, as Replicated local tables with Distributed
tables over them.

The migration files hold the single-node SQL and never change once applied (their checksums are recorded in
deployed databases), so cluster mode renders each statement again instead:

- ``CREATE TABLE t (...) ENGINE = XMergeTree(args) ...`` becomes ``t_local`` on every node, a
  ``ReplicatedXMergeTree('/clickhouse/tables/{shard}/{database}/t_local', '{replica}', args)`` with the rest of
  the statement (columns, ORDER BY, PARTITION BY, TTL, SETTINGS, COMMENT) unchanged, plus ``t``, a
  ``Distributed`` table over ``t_local`` sharded by ``SHARDING_KEYS[t]``. The service's queries read and write
  ``t`` as on a single node.
- ``CREATE TABLE t AS s ENGINE = Null`` (a table that keeps nothing and only feeds its views) becomes ``t_local``,
  a Null table with the columns of ``s_local`` on every node (Null has no Replicated form and nothing to
  replicate), plus ``t``, a ``Distributed`` table over it: a row inserted into ``t`` reaches the shard
  ``SHARDING_KEYS[t]`` picks, whose views write the local tables there. Insert synchronously
  (``insert_distributed_sync = 1``): an insert queued in the background has fed no view when it returns.
- ``CREATE MATERIALIZED VIEW v TO t AS SELECT ... FROM s`` reads ``s_local`` and writes ``t_local`` on each node:
  an aggregate row is made on the shard where its feedback row lands (and replicated with the part).
- ``DROP VIEW v`` drops the view on every node.
- ``DROP TABLE t`` (a table a later migration replaced) drops ``t`` and ``t_local`` on every node.
- ``ALTER TABLE t`` alters ``t_local``; column changes alter the Distributed ``t`` too.
- ``INSERT INTO t SELECT ...`` (the backfills) runs through the Distributed tables, synchronously.
- ``CREATE DATABASE`` gets ``ON CLUSTER``.

Every table name is qualified with the database: a distributed DDL query does not carry the session's current
database into ``AS`` clauses and engine arguments (ClickHouse issues #6104 and #37318).

The renderer reads the SQL this project writes, token by token (string literals, quoted names and comments are
never mistaken for keywords). A construct it does not know raises :class:`ClusterDDLError` rather than
producing DDL that would be wrong on a cluster.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

__all__ = [
    "RECOMMENDED_SETTINGS",
    "SHARDING_KEYS",
    "Cluster",
    "ClusterDDLError",
    "check_cluster_name",
    "create_database_statement",
    "render_statement",
    "settings_advice",
]

# How rows are spread over shards, per table. A ReplacingMergeTree deduplicates within one shard only, so every
# revision of a row must land on the same shard: the key hashes leading columns of the table's ORDER BY
# (rand() would leave two "current" revisions on two shards).
SHARDING_KEYS: Mapping[str, str] = {
    # Every revision of a feedback has the same project and trace_id (an update cannot change trace_id), so
    # FINAL and LIMIT 1 BY see all of them on one shard; traces spread evenly.
    "feedback": "cityHash64(project, trace_id)",
    # Filled by views that run where the feedback row lands, so keyed like feedback: a feedback and its copy
    # for exports, and every vote on a trace, share a shard.
    "feedback_by_time": "cityHash64(project, trace_id)",
    "user_votes": "cityHash64(project, trace_id)",
    # A Null table whose views fill the derived tables: a row must reach the shard of its feedback.
    "feedback_changes": "cityHash64(project, trace_id)",
    # Signed deltas, summed on read: the rows of one group may sit on any shard. The views write them where the
    # feedback lands; this key places only direct inserts (the backfills).
    "feedback_rollups": "cityHash64(project, model, model_version, key)",
    # Replaced by feedback_rollups (migration 0012), which drops them; the older migrations still name them.
    "feedback_aggregates": "cityHash64(project, model, model_version, key)",
    "feedback_authors": "cityHash64(project, model, model_version, key)",
    # Small ReplacingMergeTree tables written by the service: their ORDER BY key's leading columns.
    "api_keys": "cityHash64(key_id)",
    "feedback_keys": "cityHash64(project, name)",
    "annotation_queues": "cityHash64(project, queue_id)",
    "queue_items": "cityHash64(project, queue_id, item_id)",
    "queue_claims": "cityHash64(project, queue_id, item_id)",
    "derived_checkpoint": "cityHash64(name)",
    # The migration ledger: one row per version.
    "schema_migrations": "cityHash64(version)",
}

LOCAL_SUFFIX = "_local"
REPLICA_PATH = "/clickhouse/tables/{shard}/{database}/"
# Inserts through a Distributed table are queued on the local node by default; migrations wait until the
# rows are on their shards.
SYNC_INSERT_SETTING = "insert_distributed_sync"

_REPLICABLE_ENGINES = frozenset(
    {
        "MergeTree",
        "ReplacingMergeTree",
        "SummingMergeTree",
        "AggregatingMergeTree",
        "CollapsingMergeTree",
        "VersionedCollapsingMergeTree",
    }
)
# ALTER commands that change columns: applied to the Distributed table as well.
_COLUMN_COMMANDS = frozenset(
    {("ADD", "COLUMN"), ("DROP", "COLUMN"), ("MODIFY", "COLUMN"), ("RENAME", "COLUMN"), ("COMMENT", "COLUMN")}
)
# ALTER commands about the stored data only: the local tables alone.
_LOCAL_COMMANDS = frozenset(
    {
        ("ADD", "INDEX"),
        ("DROP", "INDEX"),
        ("MATERIALIZE", "INDEX"),
        ("CLEAR", "INDEX"),
        ("ADD", "PROJECTION"),
        ("DROP", "PROJECTION"),
        ("MATERIALIZE", "PROJECTION"),
        ("MODIFY", "TTL"),
        ("MODIFY", "SETTING"),
    }
)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    |(?P<comment>--[^\n]*|/\*.*?\*/)
    |(?P<string>'(?:[^'\\]|\\.|'')*')
    |(?P<quoted>`(?:[^`\\]|\\.|``)*`|"(?:[^"\\]|\\.|"")*")
    |(?P<word>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<number>[0-9][0-9A-Za-z_.]*)
    |(?P<symbol>->|!=|<>|<=|>=|==|\|\||::|[^\s'`"])
    """,
    re.VERBOSE | re.DOTALL,
)


class ClusterDDLError(ValueError):
    """A statement uses a construct the cluster renderer does not know; it would not render correctly."""


def check_cluster_name(name: str) -> str:
    """``name`` if it is a cluster name the service may put in SQL, else ValueError: the one rule for it,
    used by the configuration, the DDL and the queries that name the cluster."""
    if not _CLUSTER_NAME.fullmatch(name):
        raise ValueError(f"cluster name {name!r} must be ASCII letters, digits, '_', '-' or '.'")
    return name


@dataclass(frozen=True, slots=True)
class Cluster:
    """Where cluster DDL goes: the cluster's name (``remote_servers`` on the servers) and the database."""

    name: str
    database: str

    def __post_init__(self) -> None:
        # Both end up in DDL: allow-list them, never quote arbitrary text.
        check_cluster_name(self.name)
        if not _DATABASE_NAME.fullmatch(self.database):
            raise ValueError(f"database name {self.database!r} must match {_DATABASE_NAME.pattern}")

    @property
    def on_cluster(self) -> str:
        return f"ON CLUSTER `{self.name}`"

    def table(self, name: str) -> str:
        """``name`` qualified with the database."""
        return f"`{self.database}`.`{name}`"


def create_database_statement(cluster: Cluster) -> str:
    """``CREATE DATABASE IF NOT EXISTS`` the cluster's database on every node."""
    return f"CREATE DATABASE IF NOT EXISTS `{cluster.database}` {cluster.on_cluster}"


def render_statement(statement: str, cluster: Cluster) -> list[str]:
    """One single-node migration statement as the statements that do the same on ``cluster``."""
    parser = _Parser(statement)
    if parser.accept("CREATE", "TABLE"):
        return _create_table(parser, cluster)
    if parser.accept("CREATE", "MATERIALIZED", "VIEW"):
        return _create_view(parser, cluster)
    if parser.at_word("DROP") and (parser.accept("DROP", "VIEW") or parser.accept("DROP", "TABLE")):
        return _drop(parser, cluster, view=parser.previous_word() == "VIEW")
    if parser.accept("ALTER", "TABLE"):
        return _alter_table(parser, cluster)
    if parser.accept("INSERT", "INTO"):
        return _insert(parser, cluster)
    if parser.accept("CREATE", "DATABASE"):
        return _create_database(parser, cluster)
    raise ClusterDDLError(
        f"cannot render {parser.head()!r} for a cluster: only CREATE TABLE, CREATE MATERIALIZED VIEW ... TO, "
        "DROP VIEW, DROP TABLE, ALTER TABLE, INSERT INTO ... SELECT and CREATE DATABASE are understood"
    )


# Settings the service's ClickHouse user should have on a cluster, with why; see settings_advice.
RECOMMENDED_SETTINGS: Mapping[str, tuple[str, str]] = {
    "distributed_foreground_insert": (
        "1",
        "an acknowledged write must be on its shard before the call returns, or an update right after a "
        "create finds nothing",
    ),
    "distributed_product_mode": (
        "global",
        "the annotation queries filter feedback with IN (SELECT ... FROM queue_items): two Distributed tables, "
        "which ClickHouse refuses by default",
    ),
}


def settings_advice(client: Client) -> list[str]:
    """What to change in the connected user's settings for cluster mode; empty when nothing.

    ``distributed_foreground_insert`` is called ``insert_distributed_sync`` before ClickHouse 23.11; either
    name counts.
    """
    rows = client.query(
        "SELECT name, value FROM system.settings WHERE name IN "
        "('distributed_foreground_insert', 'insert_distributed_sync', 'distributed_product_mode')"
    ).result_rows
    values = {str(name): str(value) for name, value in rows}
    foreground = values.get("distributed_foreground_insert", values.get("insert_distributed_sync", "0"))
    current = {
        "distributed_foreground_insert": foreground,
        "distributed_product_mode": values.get("distributed_product_mode", "deny"),
    }
    return [
        f"set {name} = {wanted!r} for the service's user (it is {current[name]!r}): {why}"
        for name, (wanted, why) in RECOMMENDED_SETTINGS.items()
        if current[name] != wanted
    ]


# ---- statements -------------------------------------------------------------------------------------------


def _create_table(parser: _Parser, cluster: Cluster) -> list[str]:
    if_not_exists = "IF NOT EXISTS " if parser.accept("IF", "NOT", "EXISTS") else ""
    name = parser.table_name()
    local = name + LOCAL_SUFFIX
    if parser.at_symbol("("):
        structure = "\n" + parser.group_text()
    elif parser.accept("AS"):
        structure = f" AS {cluster.table(parser.table_name() + LOCAL_SUFFIX)}"
    else:
        raise ClusterDDLError(f"CREATE TABLE {name}: expected a column list or AS <table>, found {parser.head()!r}")
    parser.expect("ENGINE")
    parser.accept_symbol("=")
    engine = parser.word()
    if engine == "Null":
        return _create_null_table(parser, cluster, name, if_not_exists, structure)
    if engine not in _REPLICABLE_ENGINES:
        raise ClusterDDLError(
            f"CREATE TABLE {name}: engine {engine} has no Replicated form; use one of {sorted(_REPLICABLE_ENGINES)} "
            "(or Null)"
        )
    engine_arguments = parser.group_text()[1:-1].strip() if parser.at_symbol("(") else ""
    comment = parser.check_table_tail(name)
    tail = parser.rest()
    replicated_arguments = [_literal(REPLICA_PATH + local), "'{replica}'"]
    if engine_arguments:
        replicated_arguments.append(engine_arguments)
    local_table = (
        f"CREATE TABLE {if_not_exists}{cluster.table(local)} {cluster.on_cluster}{structure}\n"
        f"ENGINE = Replicated{engine}({', '.join(replicated_arguments)})" + (f"\n{tail}" if tail else "")
    )
    return [local_table, _distributed_table(cluster, name, if_not_exists, comment)]


def _create_null_table(parser: _Parser, cluster: Cluster, name: str, if_not_exists: str, structure: str) -> list[str]:
    """A Null table: a plain Null table on every node (nothing to replicate) and a Distributed one over it."""
    if parser.at_symbol("(") and parser.group_text()[1:-1].strip():
        raise ClusterDDLError(f"CREATE TABLE {name}: ENGINE = Null takes no arguments")
    comment: str | None = None
    if parser.accept("COMMENT"):
        comment = parser.string_literal(f"CREATE TABLE {name}: COMMENT")
    if parser.head():
        raise ClusterDDLError(
            f"CREATE TABLE {name}: only COMMENT is understood after ENGINE = Null, found {parser.head()!r}"
        )
    local_table = f"CREATE TABLE {if_not_exists}{cluster.table(name + LOCAL_SUFFIX)} {cluster.on_cluster}{structure}\n"
    local_table += "ENGINE = Null" + (f"\nCOMMENT {comment}" if comment else "")
    return [local_table, _distributed_table(cluster, name, if_not_exists, comment)]


def _distributed_table(cluster: Cluster, name: str, if_not_exists: str, comment: str | None) -> str:
    """``name``, a Distributed table over ``name_local`` on every node, sharded by ``SHARDING_KEYS[name]``."""
    local = name + LOCAL_SUFFIX
    distributed_arguments = [_literal(cluster.name), _literal(cluster.database), _literal(local), SHARDING_KEYS[name]]
    return (
        f"CREATE TABLE {if_not_exists}{cluster.table(name)} {cluster.on_cluster} AS {cluster.table(local)}\n"
        f"ENGINE = Distributed({', '.join(distributed_arguments)})" + (f"\nCOMMENT {comment}" if comment else "")
    )


def _create_view(parser: _Parser, cluster: Cluster) -> list[str]:
    if_not_exists = "IF NOT EXISTS " if parser.accept("IF", "NOT", "EXISTS") else ""
    name = parser.name()
    if not parser.accept("TO"):
        raise ClusterDDLError(
            f"materialized view {name}: on a cluster it needs TO <table> (a table of its own would not be "
            "replicated nor distributed)"
        )
    target = parser.table_name()
    parser.expect("AS")
    if not parser.at_word("SELECT"):
        raise ClusterDDLError(f"materialized view {name}: expected AS SELECT, found {parser.head()!r}")
    select, sources = parser.rewrite_tables(cluster, suffix=LOCAL_SUFFIX)
    if len(sources) != 1:
        raise ClusterDDLError(
            f"materialized view {name}: on a cluster it may read exactly one table (the local one on each node), "
            f"it reads {sources}"
        )
    return [
        f"CREATE MATERIALIZED VIEW {if_not_exists}{cluster.table(name)} {cluster.on_cluster} "
        f"TO {cluster.table(target + LOCAL_SUFFIX)} AS\n{select}"
    ]


def _drop(parser: _Parser, cluster: Cluster, *, view: bool) -> list[str]:
    return _drop_view(parser, cluster) if view else _drop_table(parser, cluster)


def _drop_view(parser: _Parser, cluster: Cluster) -> list[str]:
    if_exists = "IF EXISTS " if parser.accept("IF", "EXISTS") else ""
    name = parser.name()
    if name in SHARDING_KEYS:
        raise ClusterDDLError(f"DROP VIEW {name}: {name} is a table (its local and Distributed tables)")
    if parser.head():
        raise ClusterDDLError(f"DROP VIEW {name}: nothing is understood after the name, found {parser.head()!r}")
    return [f"DROP VIEW {if_exists}{cluster.table(name)} {cluster.on_cluster}"]


def _drop_table(parser: _Parser, cluster: Cluster) -> list[str]:
    """The Distributed table first (nothing reads through it any more), then the local tables under it."""
    if_exists = "IF EXISTS " if parser.accept("IF", "EXISTS") else ""
    name = parser.table_name()
    if parser.head():
        raise ClusterDDLError(f"DROP TABLE {name}: nothing is understood after the name, found {parser.head()!r}")
    return [
        f"DROP TABLE {if_exists}{cluster.table(name)} {cluster.on_cluster}",
        f"DROP TABLE {if_exists}{cluster.table(name + LOCAL_SUFFIX)} {cluster.on_cluster}",
    ]


def _alter_table(parser: _Parser, cluster: Cluster) -> list[str]:
    name = parser.table_name()
    commands = parser.split_commands()
    column_commands: list[str] = []
    for words, text in commands:
        if words in _COLUMN_COMMANDS:
            column_commands.append(text)
        elif words not in _LOCAL_COMMANDS:
            raise ClusterDDLError(f"ALTER TABLE {name}: cannot render {' '.join(words)!r} for a cluster")
    rendered = [
        f"ALTER TABLE {cluster.table(name + LOCAL_SUFFIX)} {cluster.on_cluster}\n    "
        + ",\n    ".join(text for _, text in commands)
    ]
    if column_commands:
        rendered.append(
            f"ALTER TABLE {cluster.table(name)} {cluster.on_cluster}\n    " + ",\n    ".join(column_commands)
        )
    return rendered


def _insert(parser: _Parser, cluster: Cluster) -> list[str]:
    name = parser.table_name()
    columns = " " + parser.group_text() if parser.at_symbol("(") else ""
    if not parser.at_word("SELECT"):
        raise ClusterDDLError(f"INSERT INTO {name}: only INSERT INTO ... SELECT is understood, found {parser.head()!r}")
    select, _ = parser.rewrite_tables(cluster, suffix="")
    return [f"INSERT INTO {cluster.table(name)}{columns} SETTINGS {SYNC_INSERT_SETTING} = 1\n{select}"]


def _create_database(parser: _Parser, cluster: Cluster) -> list[str]:
    if_not_exists = "IF NOT EXISTS " if parser.accept("IF", "NOT", "EXISTS") else ""
    name = parser.name()
    rest = parser.rest()
    return [f"CREATE DATABASE {if_not_exists}`{name}` {cluster.on_cluster}" + (f" {rest}" if rest else "")]


def _literal(text: str) -> str:
    """A string literal of allow-listed text (names, paths built from them): no quotes or backslashes inside."""
    if "'" in text or "\\" in text:
        raise ClusterDDLError(f"cannot put {text!r} in a string literal")
    return f"'{text}'"


# ---- tokens -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # space, comment, string, quoted, word, number, symbol
    text: str

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.upper() in words


def _tokenize(sql: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(sql):
        match = _TOKEN.match(sql, position)
        if match is None or match.lastgroup is None:
            raise ClusterDDLError(f"unterminated literal or quoted name at {sql[position : position + 30]!r}")
        tokens.append(_Token(match.lastgroup, match.group()))
        position = match.end()
    return tokens


class _Parser:
    """A cursor over the significant tokens of one statement; keeps the whitespace to reproduce text verbatim."""

    def __init__(self, statement: str) -> None:
        self._tokens = [token for token in _tokenize(statement) if token.kind != "comment"]
        self._significant = [i for i, token in enumerate(self._tokens) if token.kind != "space"]
        self._position = 0

    # -- looking -----------------------------------------------------------------------------------------

    def _peek(self, offset: int = 0) -> _Token | None:
        index = self._position + offset
        return self._tokens[self._significant[index]] if index < len(self._significant) else None

    def previous_word(self) -> str:
        """The token before the cursor, upper-cased (after ``accept``: its last word)."""
        return self._tokens[self._significant[self._position - 1]].text.upper()

    def head(self) -> str:
        """The next few tokens, for error messages."""
        return " ".join(self._tokens[i].text for i in self._significant[self._position : self._position + 6])

    def at_word(self, word: str) -> bool:
        token = self._peek()
        return token is not None and token.is_word(word)

    def at_symbol(self, symbol: str) -> bool:
        token = self._peek()
        return token is not None and token.kind == "symbol" and token.text == symbol

    # -- consuming ---------------------------------------------------------------------------------------

    def accept(self, *words: str) -> bool:
        for offset, word in enumerate(words):
            token = self._peek(offset)
            if token is None or not token.is_word(word):
                return False
        self._position += len(words)
        return True

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            raise ClusterDDLError(f"expected {' '.join(words)}, found {self.head()!r}")

    def accept_symbol(self, symbol: str) -> bool:
        if self.at_symbol(symbol):
            self._position += 1
            return True
        return False

    def word(self) -> str:
        token = self._peek()
        if token is None or token.kind != "word":
            raise ClusterDDLError(f"expected a name, found {self.head()!r}")
        self._position += 1
        return token.text

    def name(self) -> str:
        """An unqualified name, bare or in backquotes."""
        token = self._peek()
        if token is None or token.kind not in ("word", "quoted"):
            raise ClusterDDLError(f"expected a name, found {self.head()!r}")
        name = token.text[1:-1] if token.kind == "quoted" else token.text
        if not _IDENTIFIER.fullmatch(name):
            raise ClusterDDLError(f"name {token.text!r} is not a plain identifier")
        self._position += 1
        if self.at_symbol("."):
            raise ClusterDDLError(f"qualified name {name}.{self.head()!r}: migrations name tables without a database")
        if self.at_word("ON") and (following := self._peek(1)) is not None and following.is_word("CLUSTER"):
            raise ClusterDDLError(f"{name} ON CLUSTER: migrations are single-node SQL; cluster mode adds ON CLUSTER")
        return name

    def table_name(self) -> str:
        """A name that must be one of the tables cluster mode knows how to shard."""
        name = self.name()
        _check_table(name)
        return name

    def group_text(self) -> str:
        """The parenthesised group at the cursor, verbatim with its parentheses; moves past it."""
        start = self._position
        depth = 0
        while (token := self._peek()) is not None:
            self._position += 1
            if token.kind == "symbol" and token.text == "(":
                depth += 1
            elif token.kind == "symbol" and token.text == ")":
                depth -= 1
                if depth == 0:
                    return self._text(start, self._position)
        raise ClusterDDLError("unbalanced parentheses")

    def string_literal(self, what: str) -> str:
        """The string literal at the cursor, verbatim with its quotes; moves past it."""
        token = self._peek()
        if token is None or token.kind != "string":
            raise ClusterDDLError(f"{what} must be a string literal, found {self.head()!r}")
        self._position += 1
        return token.text

    def rest(self) -> str:
        """Everything after the cursor, verbatim; moves to the end."""
        text = self._text(self._position, len(self._significant))
        self._position = len(self._significant)
        return text

    def check_table_tail(self, name: str) -> str | None:
        """Checks the clauses after ENGINE (ORDER BY, TTL, SETTINGS, COMMENT ...); returns the table COMMENT."""
        comment: str | None = None
        depth = 0
        for offset in range(len(self._significant) - self._position):
            token = self._peek(offset)
            assert token is not None
            if token.kind == "symbol" and token.text in "()":
                depth += 1 if token.text == "(" else -1
            elif depth == 0 and token.is_word("AS", "POPULATE", "EMPTY"):
                raise ClusterDDLError(f"CREATE TABLE {name}: {token.text} after ENGINE is not understood")
            elif depth == 0 and token.is_word("COMMENT"):
                literal = self._peek(offset + 1)
                if literal is None or literal.kind != "string":
                    raise ClusterDDLError(f"CREATE TABLE {name}: COMMENT must be a string literal")
                comment = literal.text
        return comment

    def split_commands(self) -> list[tuple[tuple[str, ...], str]]:
        """The rest of an ALTER TABLE: its commands at depth 0, each as (first two words upper-cased, text)."""
        commands: list[tuple[tuple[str, ...], str]] = []
        depth = 0
        start = self._position
        end = len(self._significant)
        for index in range(self._position, end + 1):
            token = self._tokens[self._significant[index]] if index < end else None
            if token is not None and token.kind == "symbol" and token.text in "()":
                depth += 1 if token.text == "(" else -1
            if token is None or (depth == 0 and token.kind == "symbol" and token.text == ","):
                if index == start:
                    raise ClusterDDLError(f"empty ALTER command at {self.head()!r}")
                words = tuple(
                    self._tokens[self._significant[i]].text.upper() for i in range(start, min(start + 2, index))
                )
                commands.append((words, self._text(start, index)))
                start = index + 1
        self._position = end
        return commands

    def rewrite_tables(self, cluster: Cluster, *, suffix: str) -> tuple[str, list[str]]:
        """The rest of a SELECT, verbatim, with every table after FROM or JOIN qualified (plus ``suffix``).

        Returns the text and the tables read. A name after FROM or JOIN that is not a known table is refused,
        as is ``IN <table>``: they could not be rendered right.
        """
        replaced: dict[int, str] = {}
        sources: list[str] = []
        end = len(self._significant)
        for index in range(self._position, end):
            token = self._tokens[self._significant[index]]
            following = self._tokens[self._significant[index + 1]] if index + 1 < end else None
            previous = self._tokens[self._significant[index - 1]] if index > 0 else None
            if following is None or following.kind not in ("word", "quoted"):
                continue
            after = self._tokens[self._significant[index + 2]] if index + 2 < end else None
            if token.is_word("IN") and following.kind == "word" and not _is_symbol(after, "("):
                raise ClusterDDLError(f"IN {following.text}: a table after IN is not understood; use IN (SELECT ...)")
            if not token.is_word("FROM", "JOIN") or (previous is not None and previous.is_word("ARRAY")):
                continue
            if _is_symbol(after, "."):
                raise ClusterDDLError(f"{token.text} {following.text}.: qualified names are not understood")
            table = following.text[1:-1] if following.kind == "quoted" else following.text
            _check_table(table)
            sources.append(table)
            replaced[self._significant[index + 1]] = cluster.table(table + suffix)
        first = self._significant[self._position] if self._position < end else len(self._tokens)
        text = "".join(replaced.get(i, self._tokens[i].text) for i in range(first, len(self._tokens))).strip()
        self._position = end
        return text, sources

    def _text(self, start: int, stop: int) -> str:
        """Verbatim text of significant tokens ``start`` up to ``stop`` (exclusive), whitespace between included."""
        if start >= stop:
            return ""
        return "".join(t.text for t in self._tokens[self._significant[start] : self._significant[stop - 1] + 1])


def _is_symbol(token: _Token | None, symbol: str) -> bool:
    return token is not None and token.kind == "symbol" and token.text == symbol


def _check_table(name: str) -> None:
    if name not in SHARDING_KEYS:
        raise ClusterDDLError(
            f"table {name!r} has no sharding key: add it to SHARDING_KEYS in feedback_service/store/cluster_ddl.py"
        )
