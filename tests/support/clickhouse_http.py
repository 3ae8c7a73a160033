"""A loopback ClickHouse HTTP interface over the embedded chdb engine.

TEST FIXTURE ONLY. No ClickHouse server can be installed where these tests
run, so this module stands in for one: it speaks enough of ClickHouse's HTTP
protocol (the port 8123 interface) that an unmodified
``clickhouse_connect.get_client(interface="http", ...)`` works against it,
while every statement runs on the in-process chdb engine, which is ClickHouse
itself. It follows the real server where a client can tell the difference:

- the query is the ``query`` URL parameter followed by the request body, or
  the form fields of a ``multipart/form-data`` body;
- ``param_<name>`` parameters bind ``{name:Type}`` placeholders server-side;
- other non-reserved parameters are settings and apply to that request only;
- ``database``, ``default_format`` (or the ``X-ClickHouse-Database`` and
  ``X-ClickHouse-Format`` request headers) pick the database and the output
  format, and a ``FORMAT`` clause in the query wins over the latter;
- ``INSERT ... FORMAT <fmt>`` takes its data from the rest of the body;
- request bodies may be lz4, zstd, gzip or deflate encoded (lz4 bodies are
  several concatenated frames, all of which are decoded), and with
  ``enable_http_compression=1`` responses are compressed with the method the
  server would pick from ``Accept-Encoding``;
- ``session_id`` keeps ``SET``, ``USE`` and temporary tables across requests,
  and a session used by two requests at once is refused as locked;
- only the ``default`` user with an empty password exists, as in a fresh
  install;
- a failing query answers with the HTTP status ClickHouse maps its error code
  to, the ``X-ClickHouse-Exception-Code`` header and a
  ``Code: N. DB::Exception: ...`` body, so clickhouse-connect raises its usual
  errors.

Not supported: external data tables (multipart file parts), the native
``compress``/``decompress`` block format, brotli, progress headers, and the
read-only mode of GET requests. Responses are sent whole, as with
``wait_end_of_query=1``. The ``client_protocol_version`` parameter is ignored,
as a proxy in front of ClickHouse may do, so clients use protocol version 0.

A process can host one chdb engine path only. The fixture must be given the
path the code under test opens with ``get_client(interface="chdb", path=...)``
so both see the same data; it opens a fresh connection handle per request (or
one per HTTP session), which keeps concurrent requests apart.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import json
import re
import socket
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import parse_qsl, urlsplit

import chdb
import lz4.frame  # type: ignore[import-untyped]
from clickhouse_connect.driver._chdbclient import build_connection_string

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

# URL parameters the HTTP layer consumes; everything else not prefixed with
# param_ is a setting (ClickHouse's HTTPHandler::reserved_param_names).
_RESERVED_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "compress",
        "decompress",
        "user",
        "password",
        "quota_key",
        "query_id",
        "stacktrace",
        "role",
        "buffer_size",
        "wait_end_of_query",
        "session_id",
        "session_timeout",
        "session_check",
        "client_protocol_version",
        "close_session",
    }
)

# ClickHouse's exceptionCodeToHTTPStatus, keyed by the error name that ends
# every engine message; anything else is a 500.
_STATUS_BY_ERROR: dict[str, int] = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(
        ("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE", "ACCESS_DENIED"), 403
    ),
    **dict.fromkeys(
        (
            "BAD_ARGUMENTS",
            "CANNOT_COMPILE_REGEXP",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
            "CANNOT_PARSE_IPV4",
            "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "CANNOT_PARSE_UUID",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST",
            "UNKNOWN_TYPE_OF_AST_NODE",
            "THERE_IS_NO_COLUMN",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ),
        400,
    ),
    **dict.fromkeys(
        (
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "UNKNOWN_ROLE",
        ),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    **dict.fromkeys(("SOCKET_TIMEOUT", "CANNOT_OPEN_FILE", "CANNOT_SCHEDULE_TASK"), 503),
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}

_DEFAULT_SESSION_TIMEOUT_S = 60
_MAX_SESSION_TIMEOUT_S = 3600

_CODE_RE = re.compile(r"Code: (\d+)\. ")
_ERROR_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]*)\)\s*$")
_SETTING_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The client appends "\n FORMAT <fmt>" to queries; the engine honours it
# over the requested format, so the response must name it too.
_TRAILING_FORMAT_RE = re.compile(rb"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
# Just enough of ClickHouse's lexer to find the FORMAT clause of an INSERT
# without mistaking quoted text, comments or parenthesised lists for it.
_TOKEN_RE = re.compile(
    rb"""
    (?P<skip>\s+|--[^\n]*|\#[^\n]*|/\*.*?\*/
        |'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*"|`(?:[^`\\]|\\.)*`)
    |(?P<word>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<open>\()
    |(?P<close>\))
    |(?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_FORMAT_NAME_RE = re.compile(rb"\s+(\w+)")
_BINARY_FORMATS = ("Native", "RowBinary", "Parquet", "Arrow", "ORC", "Avro", "Protobuf", "MsgPack", "BSON", "CapnProto")


class _ClickHouseError(Exception):
    """An error as ClickHouse reports it: a numeric code and its message text,
    which starts with ``Code: N. DB::Exception:`` and ends with the name."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text

    @classmethod
    def new(cls, code: int, name: str, message: str) -> _ClickHouseError:
        return cls(code, f"Code: {code}. DB::Exception: {message}. ({name})")

    @classmethod
    def from_exception(cls, error: Exception) -> _ClickHouseError:
        if isinstance(error, _ClickHouseError):
            return error
        text = str(error)
        # chdb prefixes its own context ("Streaming insert finish failed: ")
        match = _CODE_RE.search(text)
        if match is None:
            return cls.new(1001, "STD_EXCEPTION", f"{type(error).__name__}: {text}")
        return cls(int(match.group(1)), text[match.start() :].strip())

    @property
    def http_status(self) -> int:
        match = _ERROR_NAME_RE.search(self.text)
        return _STATUS_BY_ERROR.get(match.group(1), 500) if match else 500


class _FrameDecoder(Protocol):
    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes) -> bytes: ...


def _decode_frames(data: bytes, new_decoder: Callable[[], _FrameDecoder]) -> bytes:
    """Decode every frame of a body made of concatenated frames: the client
    compresses each insert block as a frame of its own."""
    out: list[bytes] = []
    while data:
        decoder = new_decoder()
        out.append(decoder.decompress(data))
        if not decoder.eof:
            raise ValueError("truncated compressed frame")
        data = decoder.unused_data
    return b"".join(out)


def _decode_body(body: bytes, encoding: str) -> bytes:
    method = encoding.strip().lower()
    decoders: dict[str, Callable[[bytes], bytes]] = {
        "lz4": lambda data: _decode_frames(data, lz4.frame.LZ4FrameDecompressor),
        "zstd": zstd.decompress,  # decodes concatenated frames itself
        "gzip": gzip.decompress,  # likewise for concatenated members
        "deflate": lambda data: _decode_frames(data, zlib.decompressobj),
    }
    if method in ("", "identity", "none"):
        return body
    if method not in decoders:
        raise _ClickHouseError.new(48, "NOT_IMPLEMENTED", f"Unknown compression method '{encoding}'")
    try:
        return decoders[method](body)
    except (ValueError, RuntimeError, EOFError, OSError, zlib.error, zstd.ZstdError) as error:
        raise _ClickHouseError.new(271, "CANNOT_DECOMPRESS", f"Cannot decode {method} request body: {error}") from error


def _encode_response(body: bytes, accept_encoding: str) -> tuple[bytes, str | None]:
    """Compress like ClickHouse's chooseHTTPCompressionMethod: the first
    method of its preference order that the client accepts (brotli, which
    ranks second there, is not available here)."""
    if "zstd" in accept_encoding:
        return zstd.compress(body), "zstd"
    if "lz4" in accept_encoding:
        return lz4.frame.compress(body), "lz4"
    if "gzip" in accept_encoding:
        return gzip.compress(body), "gzip"
    if "deflate" in accept_encoding:
        return zlib.compress(body), "deflate"
    return body, None


def _content_type(fmt: str | None) -> str:
    if fmt is None:
        return "text/plain; charset=UTF-8"
    if fmt.startswith("JSON"):
        return "application/json; charset=UTF-8"
    if fmt.startswith(_BINARY_FORMATS):
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


def _tokens(sql: bytes) -> Iterator[tuple[str | None, bytes, re.Match[bytes]]]:
    """The tokens of ``sql`` as (kind, upper-cased text, match), comments and
    whitespace left out. Every byte matches some alternative, so the tokens
    are contiguous; callers stop before reaching any binary insert data."""
    for token in _TOKEN_RE.finditer(sql):
        if token.lastgroup != "skip":
            yield token.lastgroup, token.group().upper(), token


def _first_keyword(sql: bytes) -> bytes:
    return next((word for kind, word, _ in _tokens(sql) if kind == "word"), b"")


def _split_insert(sql: bytes) -> tuple[str, str, bytes] | None:
    """Split ``INSERT ... FORMAT <fmt> <data>`` into the statement, the format
    and the data, where ClickHouse's parser would (ParserInsertQuery); None
    for any other statement, VALUES and INSERT ... SELECT included."""
    if _first_keyword(sql) != b"INSERT":
        return None
    depth = 0
    for kind, word, token in _tokens(sql):
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
        elif kind == "word" and depth == 0 and word in (b"VALUES", b"SELECT", b"WITH"):
            return None
        elif kind == "word" and depth == 0 and word == b"FORMAT":
            name = _FORMAT_NAME_RE.match(sql, token.end())
            if name is None:
                return None
            data_start = name.end()
            while sql[data_start : data_start + 1] in (b" ", b"\t", b"\f"):
                data_start += 1
            if sql[data_start : data_start + 1] == b"\r":
                data_start += 1
            if sql[data_start : data_start + 1] == b"\n":
                data_start += 1
            return sql[: token.start()].decode(), name.group(1).decode(), sql[data_start:]
    return None


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _form_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The fields of a multipart/form-data body, which clickhouse-connect
    sends when bind parameters are too long for the URL."""
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields: dict[str, str] = {}
    for part in message.walk():
        if part.is_multipart():
            continue
        if part.get_filename() is not None:
            raise _ClickHouseError.new(48, "NOT_IMPLEMENTED", "External data is not supported by the test fixture")
        payload = part.get_payload(decode=True)
        fields[str(part.get_param("name", header="content-disposition"))] = (
            payload.decode() if isinstance(payload, bytes) else ""
        )
    return fields


def _authenticate(headers: Message, params: Mapping[str, str]) -> None:
    user, password = params.get("user", "default"), params.get("password", "")
    if "X-ClickHouse-User" in headers or "X-ClickHouse-Key" in headers:
        user, password = headers.get("X-ClickHouse-User", "default"), headers.get("X-ClickHouse-Key", "")
    authorization = headers.get("Authorization", "")
    if authorization.startswith("Basic "):
        try:
            user, _, password = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = "?"
    elif authorization:
        user = password = "?"  # a fresh install has no token authentication
    if user != "default" or password:
        raise _ClickHouseError.new(
            516,
            "AUTHENTICATION_FAILED",
            f"{user}: Authentication failed: password is incorrect, or there is no user with such name",
        )


@dataclass
class _Request:
    params: dict[str, str]
    headers: Message
    body: bytes


@dataclass
class _Result:
    body: bytes
    # The output format, None for a statement that returns no result set
    fmt: str | None
    summary: dict[str, str]


@dataclass
class _Session:
    conn: Any
    timeout_s: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    expires_at: float = 0.0
    broken: bool = False
    # The session's own database and setting assignments, to put back after
    # a request overrides them; learnt on first use, forgotten after a SET or
    # USE statement of the session itself
    own_database: str = ""
    own_settings: dict[str, str] = field(default_factory=dict)


def _run(conn: Any, sql: str | bytes, fmt: str, params: Mapping[str, str] | None = None) -> Any:
    try:
        return conn.query(sql, fmt, params=dict(params or {}))
    except Exception as error:
        raise _ClickHouseError.from_exception(error) from error


class _Engine:
    """Executes requests on the chdb engine at one path."""

    def __init__(self, engine_path: str) -> None:
        # The same normalisation the chdb client applies: chdb compares
        # engine paths literally and refuses a second one in the process
        self._conn_str = build_connection_string(engine_path, None)
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        # chdb shuts the engine down when its last handle closes, dropping
        # Memory tables and making the next connect slow; this one stays open
        self._pinned: Any = None
        self.version = ""
        self.timezone = ""

    def connect(self) -> Any:
        try:
            return chdb.connect(self._conn_str)  # type: ignore[no-untyped-call]  # chdb leaves it unannotated
        except Exception as error:
            raise _ClickHouseError.from_exception(error) from error

    def open(self) -> None:
        pinned = self.connect()
        try:
            self.version, self.timezone = _run(pinned, "SELECT version(), timezone()", "TSV").bytes().decode().split()
        except _ClickHouseError:
            pinned.close()
            raise
        self._pinned = pinned

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            with session.lock:  # lets an in-flight request finish first
                session.conn.close()
        self._pinned.close()

    def execute(self, request: _Request) -> _Result:
        session_id = request.params.get("session_id")
        if not session_id:
            conn = self.connect()
            try:
                return self._execute_on(conn, request, None)
            finally:
                conn.close()
        session = self._checkout(session_id, request.params)
        try:
            return self._execute_on(session.conn, request, session)
        finally:
            keep = request.params.get("close_session") not in ("1", "true") and not session.broken
            self._checkin(session_id, session, keep=keep)

    def _checkout(self, session_id: str, params: Mapping[str, str]) -> _Session:
        raw_timeout = params.get("session_timeout", str(_DEFAULT_SESSION_TIMEOUT_S))
        if not raw_timeout.isdigit() or int(raw_timeout) > _MAX_SESSION_TIMEOUT_S:
            raise _ClickHouseError.new(374, "INVALID_SESSION_TIMEOUT", f"Invalid session timeout: '{raw_timeout}'")
        with self._lock:
            now = time.monotonic()
            for sid, idle in list(self._sessions.items()):
                if idle.expires_at < now and idle.lock.acquire(blocking=False):
                    del self._sessions[sid]
                    idle.conn.close()
            session = self._sessions.get(session_id)
            if session is None:
                if params.get("session_check") == "1":
                    raise _ClickHouseError.new(372, "SESSION_NOT_FOUND", f"Session {session_id} not found")
                session = self._sessions[session_id] = _Session(self.connect(), int(raw_timeout))
            if not session.lock.acquire(blocking=False):
                raise _ClickHouseError.new(
                    373, "SESSION_IS_LOCKED", f"Session {session_id} is locked by a concurrent client"
                )
            session.timeout_s = int(raw_timeout)
            return session

    def _checkin(self, session_id: str, session: _Session, *, keep: bool) -> None:
        with self._lock:
            session.expires_at = time.monotonic() + session.timeout_s
            if not keep and self._sessions.get(session_id) is session:
                del self._sessions[session_id]
                session.conn.close()
            session.lock.release()

    def _execute_on(self, conn: Any, request: _Request, session: _Session | None) -> _Result:
        params, headers = request.params, request.headers
        sql = params.get("query", "").encode() + request.body
        database = headers.get("X-ClickHouse-Database") or params.get("database")
        settings = {k: v for k, v in params.items() if k not in _RESERVED_PARAMS and not k.startswith("param_")}
        for name in settings:
            if not _SETTING_NAME_RE.fullmatch(name):
                raise _ClickHouseError.new(115, "UNKNOWN_SETTING", f"Unknown setting '{name}'")
        if session is not None:
            self._learn_session_state(conn, session, settings)
        try:
            if database:
                _run(conn, f"USE {_quote_identifier(database)}", "TSV")
            if settings:
                _run(conn, "SET " + ", ".join(f"{k} = {_quote(v)}" for k, v in settings.items()), "TSV")
            return self._run_statement(conn, sql, request)
        finally:
            if session is not None:
                self._restore_session_state(conn, session, settings, database=database, sql=sql)

    @staticmethod
    def _learn_session_state(conn: Any, session: _Session, settings: Mapping[str, str]) -> None:
        missing = [name for name in settings if name not in session.own_settings]
        if not missing and session.own_database:
            return
        names = ", ".join(_quote(name) for name in missing) or "''"
        # system.settings takes milliseconds to build, hence learning once
        rows = _run(
            conn,
            "SELECT currentDatabase() AS db, '' AS name, '' AS value, 0 AS changed UNION ALL "
            f"SELECT currentDatabase(), name, value, changed FROM system.settings WHERE name IN ({names})",
            "JSONEachRow",
        )
        for line in rows.bytes().splitlines():
            row = json.loads(line)
            session.own_database = row["db"]
            if row["name"]:
                own_value = _quote(row["value"]) if row["changed"] else "DEFAULT"
                session.own_settings[row["name"]] = f"{row['name']} = {own_value}"

    @staticmethod
    def _restore_session_state(
        conn: Any, session: _Session, settings: Mapping[str, str], *, database: str | None, sql: bytes
    ) -> None:
        """URL settings and the database apply to one request only (real
        ClickHouse sets them on the query context, not the session)."""
        statements = [f"USE {_quote_identifier(session.own_database)}"] if database else []
        assignments = [session.own_settings[name] for name in settings if name in session.own_settings]
        if assignments:
            statements.append("SET " + ", ".join(assignments))
        try:
            for statement in statements:
                _run(conn, statement, "TSV")
        except _ClickHouseError:
            # A session in an unknown state would leak this request's values
            session.broken = True
        if _first_keyword(sql) in (b"SET", b"USE"):
            session.own_database = ""
            session.own_settings.clear()

    def _run_statement(self, conn: Any, sql: bytes, request: _Request) -> _Result:
        params, headers = request.params, request.headers
        if not sql.strip():
            raise _ClickHouseError.new(62, "SYNTAX_ERROR", "Empty query")
        insert = _split_insert(sql)
        if insert is not None:
            statement, fmt, data = insert
            try:
                with conn.send_insert(statement, fmt) as inserter:
                    if data:
                        inserter.append(data)
                    written = inserter.finish()
            except Exception as error:
                raise _ClickHouseError.from_exception(error) from error
            summary = {
                "written_rows": str(written.rows_written),
                "written_bytes": str(written.bytes_written),
                "elapsed_ns": str(int(written.elapsed * 1e9)),
            }
            return _Result(b"", None, summary)
        embedded = _TRAILING_FORMAT_RE.search(sql)
        fmt = embedded.group(1).decode() if embedded else (headers.get("X-ClickHouse-Format") or "")
        fmt = fmt or params.get("default_format") or "TabSeparated"
        # A statement without a result set gives an empty body in any format,
        # and so does an empty result; with names the latter is not empty
        with_names = embedded is None and fmt in ("TabSeparated", "TSV")
        query_params = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        result = _run(conn, sql, "TabSeparatedWithNames" if with_names else fmt, query_params)
        body: bytes = result.bytes() or b""
        has_result = bool(body)
        if with_names:
            body = body[body.find(b"\n") + 1 :]
        summary = {
            "read_rows": str(result.rows_read()),
            "read_bytes": str(result.bytes_read()),
            "written_rows": str(result.rows_written()),
            "written_bytes": str(result.bytes_written()),
            "elapsed_ns": str(int(result.elapsed() * 1e9)),
        }
        return _Result(body, fmt if has_result else None, summary)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Many clients connect at once in tests; the default backlog of 5 would
    # make the kernel drop SYNs and stall a connect by a second
    request_queue_size = 128

    def __init__(self, engine: _Engine, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.engine = engine
        self.display_name = socket.gethostname()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, conn: socket.socket, *, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_connections(self) -> None:
        """End idle keep-alive connections, whose handler threads would
        otherwise keep serving after the server stopped."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps the client's pooled connection open between requests
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Without this, Nagle's algorithm holds back each response's last
        # segment until the client's delayed ACK: ~40 ms per request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, open_=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: tests make thousands of them."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            # urllib3 streams generator bodies (large inserts) chunked
            chunks: list[bytes] = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailer fields
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        url = urlsplit(self.path)
        try:
            raw_body = self._read_body()
        except ValueError:
            # The client gave up mid-body, e.g. its insert failed while streaming
            self.close_connection = True
            return
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        if url.path == "/ping" or (url.path == "/" and self.command == "GET" and "query" not in params):
            self._respond(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            return
        if url.path != "/":
            self._respond(404, f"There is no handle {url.path}\n".encode(), {"Content-Type": "text/plain"})
            return
        engine = self.server.engine
        query_id = params.get("query_id") or self.headers.get("X-ClickHouse-Query-Id") or str(uuid.uuid4())
        headers = {"X-ClickHouse-Server-Display-Name": self.server.display_name, "X-ClickHouse-Query-Id": query_id}
        try:
            _authenticate(self.headers, params)
            body = _decode_body(raw_body, self.headers.get("Content-Encoding", ""))
            content_type = self.headers.get("Content-Type", "")
            if content_type.startswith("multipart/form-data"):
                params.update(_form_fields(content_type, body))
                body = b""
            if params.get("decompress") in ("1", "true"):
                raise _ClickHouseError.new(48, "NOT_IMPLEMENTED", "decompress=1 is not supported by the test fixture")
            result = engine.execute(_Request(params, self.headers, body))
        except Exception as error:
            # Every failure is reported the way ClickHouse reports one
            failure = _ClickHouseError.from_exception(error)
            headers["X-ClickHouse-Exception-Code"] = str(failure.code)
            headers["Content-Type"] = "text/plain; charset=UTF-8"
            trailer = f" (version {engine.version} (official build))\n"
            self._respond(failure.http_status, (failure.text + trailer).encode(), headers)
            return
        headers["X-ClickHouse-Summary"] = json.dumps(result.summary, separators=(",", ":"))
        headers["Content-Type"] = _content_type(result.fmt)
        if result.fmt is not None:
            headers["X-ClickHouse-Format"] = result.fmt
            headers["X-ClickHouse-Timezone"] = params.get("session_timezone") or engine.timezone
        body = result.body
        if params.get("enable_http_compression") in ("1", "true"):
            body, encoding = _encode_response(body, self.headers.get("Accept-Encoding", ""))
            if encoding is not None:
                headers["Content-Encoding"] = encoding
        self._respond(200, body, headers)

    def _respond(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ClickHouseHttpFixture:
    """A ClickHouse HTTP endpoint on 127.0.0.1 backed by the chdb engine at
    ``engine_path``; use as a context manager or call start() and stop().
    ``port`` 0 picks a free port; a fixed one lets a test bring a stopped
    endpoint back where its clients expect it."""

    def __init__(self, engine_path: str, port: int = 0) -> None:
        self._engine = _Engine(engine_path)
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the ClickHouse HTTP fixture is already running")
        # Opening the engine first surfaces a conflicting engine path here
        self._engine.open()
        self._server = _Server(self._engine, self._requested_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="clickhouse-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.server_close()
        server.close_connections()
        thread.join()
        self._engine.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the ClickHouse HTTP fixture is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
