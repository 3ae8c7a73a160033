"""Settings from command-line flags and FEEDBACK_* environment variables (flag > env > default).

``OPTIONS`` is the single list of settings: the CLI's flags, the env var names
and the README's configuration table all come from it.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc

from feedback_service.config_errors import ConfigError
from feedback_service.store.cluster_ddl import check_cluster_name
from feedback_service.store.engine import EngineConfig
from feedback_service.store.feedback_store import BatchingConfig
from feedback_service.web.cors import parse_origin  # the rule lives with the CORS policy

__all__ = ["ConfigError", "Settings", "add_arguments", "load_settings", "variable_of"]


@dataclass(frozen=True, slots=True)
class Option:
    name: str  # attribute of Settings; the flag is --name-with-dashes
    env: str
    parse: Callable[[str], Any]
    help: str
    has_flag: bool = True  # secrets come from the environment only: flags show in `ps`
    is_switch: bool = False  # a flag without a value (the env var takes 1/true/yes or 0/false/no)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError(f"must be zero or more, got {text}")
    return value


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"must be 1/true/yes or 0/false/no, got {text!r}")


def _secret(text: str) -> str | None:
    if text and len(text) < 16:
        raise ValueError("must be at least 16 characters: it grants every scope on every project")
    return text or None


def _secrets(text: str) -> tuple[str, ...]:
    secrets = tuple(part.strip() for part in text.split(",") if part.strip())
    if any(len(secret) < 32 for secret in secrets):
        raise ValueError("each secret must be at least 32 characters")
    return secrets


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {text!r}")
        return text

    return parse


def _optional_url(text: str) -> str | None:
    if not text:
        return None
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"must be an http:// or https:// URL, got {text!r}")
    return text


def _public_url(text: str) -> str | None:
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"must be an http:// or https:// URL with a host and no query or fragment, got {text!r}")
    return text.rstrip("/")


# A host name or IPv4 address, or an IPv6 address in brackets (with an optional zone), then a port.
_HOST_PORT = re.compile(r"(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?\]):(?P<port>[0-9]{1,5})")


def _address(text: str) -> str:
    """The one rule for every listen setting, checked before anything starts."""
    found = _HOST_PORT.fullmatch(text)
    if found is None or int(found["port"]) > 65535:
        raise ValueError(f"must be host:port with a port of 0-65535 (e.g. 0.0.0.0:50051, [::]:50051), got {text!r}")
    return text


def _optional_address(text: str) -> str | None:
    return _address(text) if text else None


def _origins(text: str) -> tuple[str, ...]:
    return tuple(parse_origin(part) for part in text.split(",") if part.strip())


def _cluster_name(text: str) -> str | None:
    return check_cluster_name(text) if text else None  # the rule lives in cluster_ddl, with the DDL


def _database_name(text: str) -> str:
    EngineConfig(data_dir=Path(), database=text)  # the one place the name rule lives
    return text


@dataclass(frozen=True, slots=True)
class Settings:
    listen: str = "127.0.0.1:50051"
    http_listen: str | None = "127.0.0.1:8080"
    cors_origins: tuple[str, ...] = ()
    public_url: str | None = None
    data_dir: Path = Path("./data")
    clickhouse_url: str | None = None
    clickhouse_database: str = "feedback"
    clickhouse_cluster: str | None = None
    skip_migrations: bool = False
    db_threads: int = 4
    batch_max_rows: int = 10_000
    batch_max_delay_ms: float = 2.0
    write_queue_rows: int = 200_000
    shutdown_grace_s: float = 10.0
    replica_settle_s: float = 2.0
    admin_key: str | None = None
    admin_key_file: Path | None = None
    token_secrets: tuple[str, ...] = ()
    insecure_no_auth: bool = False
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    rate_limit_per_s: float = 10_000.0
    rate_limit_burst: float = 20_000.0
    log_format: str = "auto"
    log_level: str = "info"
    metrics_listen: str | None = None
    tracing: str = "off"

    def __post_init__(self) -> None:
        if self.clickhouse_cluster and not self.clickhouse_url:
            raise ConfigError(
                "FEEDBACK_CLICKHOUSE_CLUSTER (--clickhouse-cluster) needs FEEDBACK_CLICKHOUSE_URL: the embedded "
                "engine is one process on one machine and has no clusters"
            )

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            data_dir=self.data_dir,
            url=self.clickhouse_url,
            database=self.clickhouse_database,
            threads=self.db_threads,
        )

    @property
    def settle_s(self) -> float:
        """The embedded engine has one process, whose in-flight creates the store tracks exactly."""
        return self.replica_settle_s if self.clickhouse_url else 0.0

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """TLS credentials when a certificate is configured; None for plain text."""
        if self.tls_cert_file is None and self.tls_key_file is None:
            if self.tls_client_ca_file is not None:
                raise ConfigError("FEEDBACK_TLS_CLIENT_CA_FILE: mutual TLS needs FEEDBACK_TLS_CERT_FILE and _KEY_FILE")
            return None
        if self.tls_cert_file is None or self.tls_key_file is None:
            raise ConfigError("FEEDBACK_TLS_CERT_FILE and FEEDBACK_TLS_KEY_FILE: set both or neither")
        try:
            chain = self.tls_cert_file.read_bytes()
            key = self.tls_key_file.read_bytes()
            client_ca = self.tls_client_ca_file.read_bytes() if self.tls_client_ca_file else None
        except OSError as error:
            raise ConfigError(f"TLS files: {error}") from error
        return grpc.ssl_server_credentials(
            [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
        )

    def configured_admin_key(self) -> str | None:
        """FEEDBACK_ADMIN_KEY, else the contents of FEEDBACK_ADMIN_KEY_FILE, else None."""
        if self.admin_key:
            return self.admin_key
        if self.admin_key_file is not None:
            try:
                return _secret(self.admin_key_file.read_text().strip())
            except (OSError, ValueError) as error:
                raise ConfigError(f"FEEDBACK_ADMIN_KEY_FILE: {error}") from error
        return None

    def batching_config(self) -> BatchingConfig:
        return BatchingConfig(
            max_rows=self.batch_max_rows,
            max_delay_s=self.batch_max_delay_ms / 1000,
            max_queued_rows=self.write_queue_rows,
        )


OPTIONS: tuple[Option, ...] = (
    Option("listen", "FEEDBACK_LISTEN", _address, "host:port the gRPC server listens on (port 0 picks a free one)"),
    Option(
        "http_listen",
        "FEEDBACK_HTTP_LISTEN",
        _optional_address,
        "host:port of the HTTP face: every RPC over Connect (JSON and binary) and gRPC-Web, /healthz and "
        "/readyz (port 0 picks a free one); empty turns it off",
    ),
    Option(
        "cors_origins",
        "FEEDBACK_CORS_ORIGINS",
        _origins,
        "comma-separated origins (scheme://host[:port]) whose pages may call the HTTP face, with end-user "
        "feedback tokens only; empty = no cross-origin access",
    ),
    Option(
        "public_url",
        "FEEDBACK_PUBLIC_URL",
        _public_url,
        "base URL people reach the HTTP face (and its console) at, e.g. https://feedback.example.com; console "
        "links are <public URL>/#link=<token>. Unset: http(s)://<FEEDBACK_HTTP_LISTEN host>:<port>",
    ),
    Option("data_dir", "FEEDBACK_DATA_DIR", Path, "data dir of the embedded ClickHouse engine"),
    Option(
        "clickhouse_url",
        "FEEDBACK_CLICKHOUSE_URL",
        _optional_url,
        "ClickHouse server URL, e.g. https://user:pass@host:8443; unset = embedded engine",
    ),
    Option(
        "clickhouse_database",
        "FEEDBACK_CLICKHOUSE_DATABASE",
        _database_name,
        "ClickHouse database (created if missing)",
    ),
    Option(
        "clickhouse_cluster",
        "FEEDBACK_CLICKHOUSE_CLUSTER",
        _cluster_name,
        "ClickHouse cluster name (with a server URL): migrations run ON CLUSTER, creating Replicated tables "
        "and Distributed tables over them; unset = a single node",
    ),
    Option(
        "skip_migrations",
        "FEEDBACK_SKIP_MIGRATIONS",
        _boolean,
        "serve without migrating at start (a deploy job runs `feedback migrate` first); the schema must be current",
        is_switch=True,
    ),
    Option("db_threads", "FEEDBACK_DB_THREADS", _positive_int, "worker threads for database calls"),
    Option(
        "batch_max_rows", "FEEDBACK_BATCH_MAX_ROWS", _positive_int, "most rows the micro-batcher puts in one insert"
    ),
    Option(
        "batch_max_delay_ms",
        "FEEDBACK_BATCH_MAX_DELAY_MS",
        _non_negative_float,
        "how long an idle micro-batcher waits for more creates before inserting",
    ),
    Option(
        "write_queue_rows",
        "FEEDBACK_WRITE_QUEUE_ROWS",
        _positive_int,
        "rows that may wait for insertion; beyond it creates get RESOURCE_EXHAUSTED",
    ),
    Option(
        "shutdown_grace_s",
        "FEEDBACK_SHUTDOWN_GRACE_S",
        _non_negative_float,
        "seconds in-flight calls get to finish on SIGTERM/SIGINT (following streams end at once)",
    ),
    Option(
        "replica_settle_s",
        "FEEDBACK_REPLICA_SETTLE_S",
        _non_negative_float,
        "with a ClickHouse server only: how far exports and watermarks stay behind the clock, so a create "
        "still in flight on another replica cannot land behind an export cursor",
    ),
    Option(
        "admin_key",
        "FEEDBACK_ADMIN_KEY",
        _secret,
        "bootstrap admin key, valid for every project and scope (environment only); with the embedded engine "
        "and no admin key set, `feedback serve` creates one in <data dir>/admin.key and prints it",
        has_flag=False,
    ),
    Option("admin_key_file", "FEEDBACK_ADMIN_KEY_FILE", Path, "file holding the bootstrap admin key"),
    Option(
        "token_secrets",
        "FEEDBACK_TOKEN_SECRETS",
        _secrets,
        "comma-separated secrets for end-user feedback tokens (environment only): the first signs, all verify; "
        "rotate by prepending a new one, drop the old one after 7 days. Unset: no tokens",
        has_flag=False,
    ),
    Option(
        "insecure_no_auth",
        "FEEDBACK_INSECURE_NO_AUTH",
        _boolean,
        "turn authentication off: every caller may do everything (local experiments only)",
        is_switch=True,
    ),
    Option("tls_cert_file", "FEEDBACK_TLS_CERT_FILE", Path, "PEM certificate chain: serve TLS (with the key file)"),
    Option("tls_key_file", "FEEDBACK_TLS_KEY_FILE", Path, "PEM private key of the TLS certificate"),
    Option(
        "tls_client_ca_file",
        "FEEDBACK_TLS_CLIENT_CA_FILE",
        Path,
        "PEM CA bundle: require client certificates signed by it (mutual TLS)",
    ),
    Option(
        "rate_limit_per_s",
        "FEEDBACK_RATE_LIMIT_PER_S",
        _non_negative_float,
        "per-credential rate limit in units a second (a call, or an item of a batch); 0 turns it off",
    ),
    Option(
        "rate_limit_burst",
        "FEEDBACK_RATE_LIMIT_BURST",
        _non_negative_float,
        "units a credential may spend at once before the rate limit applies",
    ),
    Option(
        "log_format", "FEEDBACK_LOG_FORMAT", _choice("auto", "json", "console"), "auto = console on a TTY, else JSON"
    ),
    Option("log_level", "FEEDBACK_LOG_LEVEL", _choice("debug", "info", "warning", "error"), "minimum log level"),
    Option(
        "metrics_listen",
        "FEEDBACK_METRICS_LISTEN",
        _optional_address,
        "host:port of the Prometheus metrics endpoint (/metrics); unset = no metrics endpoint",
    ),
    Option(
        "tracing",
        "FEEDBACK_TRACING",
        _choice("off", "otlp", "console"),
        "OpenTelemetry tracing of RPCs and database calls (needs feedback-service[tracing]); otlp sends to "
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ),
)

_DEFAULTS = Settings()


def default_of(option: Option) -> Any:
    return getattr(_DEFAULTS, option.name)


def variable_of(name: str) -> str:
    """The environment variable of the setting ``name`` (a Settings attribute), for messages."""
    return next(option.env for option in OPTIONS if option.name == name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for option in OPTIONS:
        if not option.has_flag:
            continue
        default = default_of(option)
        described = f"{option.help} (env {option.env}; default {default if default not in (None, ()) else 'unset'})"
        if option.is_switch:
            parser.add_argument(option.flag, dest=option.name, action="store_const", const="1", help=described)
        else:
            parser.add_argument(option.flag, dest=option.name, metavar=option.env, default=None, help=described)


def load_settings(arguments: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> Settings:
    values: dict[str, Any] = {}
    for option in OPTIONS:
        flag_value = getattr(arguments, option.name, None)
        if flag_value is not None:
            raw, origin = flag_value, option.flag
        elif option.env in environ:
            raw, origin = environ[option.env], option.env
        else:
            continue
        try:
            values[option.name] = option.parse(raw)
        except ValueError as error:
            raise ConfigError(f"{origin}: {error}") from error
    return Settings(**values)


assert {o.name for o in OPTIONS} == {f.name for f in fields(Settings)}, "every setting needs an Option"
