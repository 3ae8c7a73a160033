"""The ClickHouse HTTP test fixture is faithful enough to stand in for a server.

Every test drives an unmodified clickhouse-connect HTTP client (or urllib3 for
protocol details) against the fixture and checks what a real ClickHouse
server would answer, comparing with a chdb client on the same engine path
where the data itself is the point.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
import urllib3
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from clickhouse_connect.driver.summary import QuerySummary

from tests.support.clickhouse_http import ClickHouseHttpFixture

# The engine may be shared with other tests, so everything lives in a
# database of this module's own
DATABASE = f"http_fixture_{uuid.uuid4().hex[:12]}"
FEEDBACK = f"{DATABASE}.feedback"
COLUMNS = ["id", "project", "comment", "score", "created_at", "labels", "version", "kind"]
FEEDBACK_DDL = f"""
CREATE TABLE {FEEDBACK} (
    id UInt64,
    project LowCardinality(String),
    comment String,
    score Nullable(Float64),
    created_at DateTime64(6, 'UTC'),
    labels Map(String, String),
    version UInt64,
    kind Enum8('thumbs_up' = 1, 'thumbs_down' = 2, 'flag' = 3)
) ENGINE = ReplacingMergeTree(version) ORDER BY (project, id)
"""
MALICIOUS = "'; DROP TABLE feedback; --"


@pytest.fixture(scope="session")
def http_fixture_engine_path(engine_dir: Path) -> str:
    """The session's one embedded engine (a process hosts one engine path at a time)."""
    return str(engine_dir)


@pytest.fixture(scope="module")
def clickhouse_http(http_fixture_engine_path: str) -> Iterator[ClickHouseHttpFixture]:
    """The fixture under test, with this module's database created."""
    with ClickHouseHttpFixture(http_fixture_engine_path) as fixture:
        admin = connect_http(fixture, autogenerate_session_id=False)
        admin.command(f"CREATE DATABASE {DATABASE}")
        yield fixture
        admin.command(f"DROP DATABASE {DATABASE}")
        admin.close()


def connect_http(fixture: ClickHouseHttpFixture, **kwargs: Any) -> Client:
    return clickhouse_connect.get_client(
        host=fixture.host, port=fixture.port, interface="http", username="default", password="", **kwargs
    )


@pytest.fixture(scope="module")
def http(clickhouse_http: ClickHouseHttpFixture) -> Iterator[Client]:
    client = connect_http(clickhouse_http)
    yield client
    client.close()


@pytest.fixture(scope="module")
def chdb_client(http_fixture_engine_path: str) -> Iterator[Client]:
    """An in-process client on the same engine, as the application opens it."""
    client = clickhouse_connect.get_client(interface="chdb", path=http_fixture_engine_path)
    yield client
    client.close()


def feedback_row(i: int) -> list[Any]:
    return [
        i,
        f"project-{i % 7}",
        f"comment {i} with 'quotes', \\backslashes\\, tabs\tand ünïcödé " + "x" * (i % 50),
        None if i % 5 == 0 else i / 3,
        datetime(2024, 5, 1, tzinfo=UTC) + timedelta(seconds=i, microseconds=i % 1_000_000),
        {"source": "test", "bucket": str(i % 11)} if i % 3 else {},
        i % 4,
        ("thumbs_up", "thumbs_down", "flag")[i % 3],
    ]


def as_utc(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """The rows with datetimes made UTC-aware: the client returns naive UTC
    for a column whose zone is the server's."""
    return [tuple(v.replace(tzinfo=v.tzinfo or UTC) if isinstance(v, datetime) else v for v in row) for row in rows]


def test_handshake_reports_the_embedded_engine(http: Client, chdb_client: Client) -> None:
    assert http.server_version == chdb_client.server_version
    assert http.command("SELECT timezone()") == chdb_client.command("SELECT timezone()")
    assert http.command("SELECT currentDatabase()") == "default"
    assert http.ping()


@pytest.mark.parametrize("compression", ["lz4", "zstd", "gzip", False])
def test_inserts_arrive_whole_with_every_request_compression(
    clickhouse_http: ClickHouseHttpFixture, compression: Any
) -> None:
    client = connect_http(clickhouse_http, compress=compression)
    table = f"{DATABASE}.compressed_{compression or 'none'}"
    client.command(f"CREATE TABLE {table} (n UInt64, text String) ENGINE = MergeTree ORDER BY n")
    rows = [[n, f"row {n} " + "y" * 200] for n in range(30_000)]
    # Several blocks: lz4 and zstd send each one as a frame of its own
    assert client.create_insert_context(table, column_names=["n", "text"], data=rows).block_row_count < len(rows)

    assert client.insert(table, rows, column_names=["n", "text"]).written_rows == len(rows)

    assert client.query(f"SELECT count(), sum(n) FROM {table}").result_rows == [(30_000, sum(range(30_000)))]
    client.close()


def test_50k_rows_round_trip_over_http(http: Client, chdb_client: Client) -> None:
    http.command(FEEDBACK_DDL)
    rows = [feedback_row(i) for i in range(50_000)]
    assert http.write_compression == "lz4"
    assert http.create_insert_context(FEEDBACK, column_names=COLUMNS, data=rows).block_row_count < len(rows)

    summary = http.insert(FEEDBACK, rows, column_names=COLUMNS)

    assert summary.written_rows == 50_000
    select = f"SELECT {', '.join(COLUMNS)} FROM {FEEDBACK} ORDER BY id"
    over_http = http.query(select).result_rows
    over_chdb = chdb_client.query(select).result_rows
    assert len(over_http) == 50_000
    assert over_http == over_chdb
    assert as_utc(over_http) == as_utc(rows)


def test_server_side_parameters_bind_typed_values_verbatim(http: Client, chdb_client: Client) -> None:
    created_at = datetime(2024, 5, 1, 12, 30, 15, 654321, tzinfo=UTC)
    result = http.query(
        "SELECT {text:String}, {n:UInt64}, {score:Nullable(Float64)}, {at:DateTime64(6, 'UTC')}, {tags:Array(String)}",
        parameters={"text": MALICIOUS, "n": 2**63, "score": None, "at": created_at, "tags": ["a'b", "c\\d", ""]},
    )
    assert as_utc(result.result_rows) == [(MALICIOUS, 2**63, None, created_at, ["a'b", "c\\d", ""])]
    # command() returns the TabSeparated text, escaped as the engine escapes it
    from_command = http.command("SELECT {text:String}", parameters={"text": MALICIOUS})
    assert from_command == chdb_client.command("SELECT {text:String}", parameters={"text": MALICIOUS})

    # DDL takes server-side parameters too
    names = {"db": DATABASE, "table": "from_parameters"}
    http.command("CREATE TABLE {db:Identifier}.{table:Identifier} (x String) ENGINE = Memory", parameters=names)
    assert http.command("EXISTS TABLE {db:Identifier}.{table:Identifier}", parameters=names) == 1

    # Parameters too long for a URL travel as multipart form fields
    ids = [f"feedback-{i:06d}" for i in range(2_000)]
    assert http.query("SELECT length({ids:Array(String)})", parameters={"ids": ids}).result_rows == [(2_000,)]


def test_failing_queries_raise_database_error_with_the_clickhouse_message(http: Client, chdb_client: Client) -> None:
    with pytest.raises(DatabaseError) as from_http:
        http.query("SELEC 1")
    with pytest.raises(DatabaseError) as from_engine:
        chdb_client.query("SELEC 1")

    assert from_http.value.code == 62
    assert "Code: 62. DB::Exception: Syntax error" in str(from_http.value)
    assert str(from_engine.value)[:80] in str(from_http.value)

    with pytest.raises(DatabaseError, match=r"Code: 60\. DB::Exception: .*missing_table.*\(UNKNOWN_TABLE\)"):
        http.command(f"SELECT * FROM {DATABASE}.missing_table")
    # The failure left the pooled connection usable
    assert http.command("SELECT 1") == 1


def test_concurrent_clients_each_get_their_own_results(clickhouse_http: ClickHouseHttpFixture, http: Client) -> None:
    table = f"{DATABASE}.concurrent"
    http.command(f"CREATE TABLE {table} (worker UInt8, n UInt32) ENGINE = MergeTree ORDER BY (worker, n)")
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            own = connect_http(clickhouse_http)
            start.wait()
            for n in range(20):
                result = own.query(
                    "SELECT {w:UInt8} AS w, sum(number) FROM numbers({n:UInt32})", parameters={"w": worker, "n": n}
                )
                assert result.result_rows == [(worker, sum(range(n)))]
            own.insert(table, [[worker, n] for n in range(1_000)], column_names=["worker", "n"])
            own.close()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    counts = http.query(f"SELECT worker, count(), sum(n) FROM {table} GROUP BY worker ORDER BY worker")
    assert counts.result_rows == [(worker, 1_000, sum(range(1_000))) for worker in range(8)]


def test_small_queries_are_not_held_back_by_nagle(http: Client) -> None:
    http.query("SELECT 1")
    started = time.perf_counter()
    for n in range(50):
        assert http.query("SELECT {n:UInt8}", parameters={"n": n}).result_rows == [(n,)]
    average = (time.perf_counter() - started) / 50
    print(f"average small query over HTTP: {average * 1000:.2f} ms")
    assert average < 0.04


def test_database_selection_and_sessions(clickhouse_http: ClickHouseHttpFixture) -> None:
    client = connect_http(clickhouse_http, database=DATABASE)
    assert client.command("SELECT currentDatabase()") == DATABASE
    client.command("CREATE TABLE in_selected_database (x UInt8) ENGINE = Memory")
    assert client.command(f"EXISTS TABLE {DATABASE}.in_selected_database") == 1

    # A session keeps SET and temporary tables; per-request settings do not stick
    client.command("CREATE TEMPORARY TABLE scratch (x UInt8)")
    client.command("INSERT INTO scratch VALUES (1), (2)")
    client.command("SET max_threads = 3")
    assert client.query("SELECT sum(x) FROM scratch").result_rows == [(3,)]
    assert client.query("SELECT getSetting('max_threads')", settings={"max_threads": 5}).result_rows == [(5,)]
    assert client.query("SELECT getSetting('max_threads')").result_rows == [(3,)]

    sessionless = connect_http(clickhouse_http, database=DATABASE, autogenerate_session_id=False)
    with pytest.raises(DatabaseError, match="UNKNOWN_TABLE"):
        sessionless.query("SELECT * FROM scratch")
    sessionless.close()
    client.close()


def test_sessionless_requests_see_each_others_data(clickhouse_http: ClickHouseHttpFixture) -> None:
    # The application's configuration: no session, a database of its own
    client = connect_http(clickhouse_http, database=DATABASE, autogenerate_session_id=False)
    client.command("CREATE TABLE in_memory (n UInt32, s String) ENGINE = Memory")

    assert client.insert("in_memory", [[1, "one"], [2, "two"]], column_names=["n", "s"]).written_rows == 2

    assert client.query("SELECT n, s FROM in_memory ORDER BY n").result_rows == [(1, "one"), (2, "two")]
    client.close()


def test_http_protocol_details(clickhouse_http: ClickHouseHttpFixture, http: Client) -> None:
    pool = urllib3.HTTPConnectionPool(clickhouse_http.host, clickhouse_http.port, maxsize=1)

    response = pool.request(
        "POST",
        "/?default_format=JSONEachRow&enable_http_compression=1&query_id=fixture-check",
        body=b"SELECT 1 AS x",
        headers={"Accept-Encoding": "gzip"},
    )
    assert response.status == 200
    assert response.data == b'{"x":1}\n'
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert response.headers["X-ClickHouse-Query-Id"] == "fixture-check"
    assert response.headers["X-ClickHouse-Timezone"] == http.command("SELECT timezone()")
    assert json.loads(response.headers["X-ClickHouse-Summary"])["read_rows"] == "1"

    failed = pool.request("POST", "/", body=f"SELECT * FROM {DATABASE}.missing_table".encode())
    assert failed.status == 404
    assert failed.headers["X-ClickHouse-Exception-Code"] == "60"
    assert failed.data.startswith(b"Code: 60. DB::Exception: ")

    denied = pool.request("POST", "/?user=default&password=wrong", body=b"SELECT 1")
    assert (denied.status, denied.headers["X-ClickHouse-Exception-Code"]) == (403, "516")

    assert pool.request("GET", "/ping").data == b"Ok.\n"
    assert pool.request("GET", "/?query=SELECT%202").data == b"2\n"
    # Every response carried a Content-Length, so one connection served all
    assert pool.num_connections == 1
    pool.close()

    # A result set, even an empty one, is told apart from a statement without one
    assert http.command("SELECT 1 WHERE 0") == ""
    assert isinstance(http.command(f"CREATE TABLE {DATABASE}.ddl (x UInt8) ENGINE = Memory"), QuerySummary)


def test_stop_also_ends_kept_alive_connections(http_fixture_engine_path: str) -> None:
    fixture = ClickHouseHttpFixture(http_fixture_engine_path)
    with fixture:
        client = connect_http(fixture, autogenerate_session_id=False)
        assert client.command("SELECT 1") == 1

    # The client's pooled connection is not served by a leftover handler
    with pytest.raises(OperationalError):
        client.command("SELECT 1")
    client.close()
    with pytest.raises(RuntimeError, match="not running"):
        _ = fixture.url
