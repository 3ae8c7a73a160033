"""Wires the layers together and runs the gRPC server and the HTTP face (Connect, gRPC-Web, health, static
files) on the same RPC table: start-up, health, reflection, metrics, tracing, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import socket
from typing import TYPE_CHECKING

import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from feedback_proto.v1 import (
    annotation_pb2,
    api_keys_pb2,
    feedback_keys_pb2,
    feedback_service_pb2,
)
from feedback_service.api.annotation_servicer import AnnotationServicer
from feedback_service.api.calls import CallPolicy
from feedback_service.api.connect_transport import RpcApplication
from feedback_service.api.feedback_key_servicer import FeedbackKeyServicer
from feedback_service.api.grpc_transport import add_rpcs
from feedback_service.api.key_servicer import ApiKeyServicer
from feedback_service.api.rate_limit import RateLimiter
from feedback_service.api.rpcs import Rpc, rpcs_of
from feedback_service.api.servicer import FeedbackServicer
from feedback_service.config import Settings
from feedback_service.domain.access.api_keys import Authenticator
from feedback_service.domain.access.feedback_tokens import TokenAuthority
from feedback_service.domain.access.key_admin import ApiKeyOperations
from feedback_service.domain.annotation.operations import AnnotationOperations
from feedback_service.domain.errors import FeedbackServiceError
from feedback_service.domain.evaluation.operations import EvaluationOperations
from feedback_service.domain.feedback.operations import FeedbackOperations, utc_now
from feedback_service.domain.keys.registry import KeySchemaOperations, KeySchemaRegistry
from feedback_service.listeners import Listeners
from feedback_service.local_admin_key import ensure_local_admin_key, ensure_local_token_secret
from feedback_service.observability.tracing import build_tracing
from feedback_service.store.annotation_store import ClickHouseAnnotationStore
from feedback_service.store.api_key_store import ClickHouseApiKeyStore
from feedback_service.store.engine import ClickHouseEngine
from feedback_service.store.feedback_key_store import ClickHouseKeySchemaStore
from feedback_service.store.feedback_store import ClickHouseFeedbackStore
from feedback_service.store.migrations import Migration, check_database_schema, migrate_database
from feedback_service.web.app import HttpApp
from feedback_service.web.cors import CorsPolicy
from feedback_service.web.serve import HttpServer, TlsFiles
from feedback_service.web.static import load_assets

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

_log = structlog.get_logger("feedback_service.server")

FEEDBACK_SERVICE = feedback_service_pb2.DESCRIPTOR.services_by_name["FeedbackService"]
KEY_SERVICE = api_keys_pb2.DESCRIPTOR.services_by_name["ApiKeyService"]
ANNOTATION_SERVICE = annotation_pb2.DESCRIPTOR.services_by_name["AnnotationService"]
SCHEMA_SERVICE = feedback_keys_pb2.DESCRIPTOR.services_by_name["FeedbackKeyService"]
SERVICE_NAME = FEEDBACK_SERVICE.full_name
KEY_SERVICE_NAME = KEY_SERVICE.full_name
ANNOTATION_SERVICE_NAME = ANNOTATION_SERVICE.full_name
SCHEMA_SERVICE_NAME = SCHEMA_SERVICE.full_name
STORAGE_PROBE_S = 1.0
# Listen addresses meaning "every interface": no URL to hand out, so console links say localhost.
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "[::]", ""})  # noqa: S104  # recognised, never bound here


async def migrate(engine: ClickHouseEngine, *, cluster: str | None = None) -> list[Migration]:
    """Create the database and apply pending migrations; with a cluster name, ON CLUSTER on every node."""
    return await asyncio.to_thread(migrate_database, engine, cluster=cluster)


async def check_schema(engine: ClickHouseEngine, *, cluster: str | None = None) -> int:
    """For --skip-migrations: raise MigrationError unless every migration is applied; returns the version."""
    return await asyncio.to_thread(check_database_schema, engine, cluster=cluster)


class FeedbackServer:
    """The service in one object: ``await start()``, then ``await stop()``.

    ``tracer_provider``: trace with it whatever ``settings.tracing`` says (tests pass one with an
    in-memory exporter); the caller keeps owning it. ``listeners``: its ports, bound already (``serve``
    binds them before it writes anything); without them, ``start()`` binds them first.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        tracer_provider: TracerProvider | None = None,
        listeners: Listeners | None = None,
    ) -> None:
        self.settings = settings
        self._listeners = listeners or Listeners(settings)
        self.metrics = self._listeners.metrics
        self.tracing = build_tracing(settings.tracing, provider=tracer_provider)
        self.engine = ClickHouseEngine(settings.engine_config(), metrics=self.metrics, tracing=self.tracing)
        self.store = ClickHouseFeedbackStore(
            self.engine, settings.batching_config(), settle_s=settings.settle_s, cluster=settings.clickhouse_cluster
        )
        self.store.batcher.instrument(metrics=self.metrics, tracing=self.tracing)
        self.keys = ClickHouseApiKeyStore(self.engine)
        admin_key = settings.configured_admin_key()
        self.tokens = TokenAuthority(settings.token_secrets)
        self.authenticator = (
            None
            if settings.insecure_no_auth
            else Authenticator(self.keys, admin_keys=[admin_key] if admin_key else [], tokens=self.tokens)
        )
        self.health = health.aio.HealthServicer()
        # One policy for every call on either port: auth, scopes, rate limits, log line, metrics, spans.
        self.calls = CallPolicy(
            self.authenticator,
            RateLimiter(rate=settings.rate_limit_per_s, burst=settings.rate_limit_burst),
            metrics=self.metrics,
            tracing=self.tracing,
        )
        self._server = self._listeners.grpc
        self.port = 0
        self.http_port: int | None = None  # None: no HTTP face (FEEDBACK_HTTP_LISTEN empty)
        self._http: HttpServer | None = None
        # Readiness of the HTTP face (/readyz), as gRPC health's SERVICE_NAME: serving, database reachable.
        self._serving = False
        self._storage_available = True
        self._storage_probe: asyncio.Task[None] | None = None
        self._pending_health: asyncio.Future[None] | None = None

    async def start(self) -> int:
        """Bind the ports, migrate (with skip_migrations: check the schema is current), then serve; returns
        the gRPC port."""
        self._listeners.bind()  # first: a port in use fails before anything is written
        self.port = self._listeners.port
        self.http_port = self._listeners.http_port
        if self._listeners.metrics_endpoint is not None:
            _log.info("metrics_listening", address=self.settings.metrics_listen, port=self.metrics_port)
        cluster = self.settings.clickhouse_cluster
        if self.settings.skip_migrations:
            version = await check_schema(self.engine, cluster=cluster)
            _log.info("schema_current", storage=self.engine.config.describe, version=version)
        else:
            applied = await migrate(self.engine, cluster=cluster)
            _log.info("migrated", storage=self.engine.config.describe, applied=[m.name for m in applied])
        await self._repair_derived_tables()
        self.store.start()
        schema_store = ClickHouseKeySchemaStore(self.engine)
        schemas = KeySchemaRegistry(schema_store)
        operations = FeedbackOperations(self.store, schemas=schemas)
        annotation = AnnotationOperations(ClickHouseAnnotationStore(self.engine), operations, schemas, clock=utc_now)
        # The RPC table: each RPC implemented once, served by both transports.
        rpcs: list[Rpc] = [
            *rpcs_of(FeedbackServicer(operations, EvaluationOperations(self.store), self.tokens), FEEDBACK_SERVICE),
            *rpcs_of(FeedbackKeyServicer(KeySchemaOperations(schema_store, schemas, clock=utc_now)), SCHEMA_SERVICE),
            *rpcs_of(AnnotationServicer(annotation, self.tokens, lambda: self.public_url), ANNOTATION_SERVICE),
        ]
        if self.authenticator is not None:
            rpcs += rpcs_of(ApiKeyServicer(ApiKeyOperations(self.keys, self.authenticator)), KEY_SERVICE)
        add_rpcs(self._server, rpcs, self.calls)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        services = [
            SERVICE_NAME,
            SCHEMA_SERVICE_NAME,
            ANNOTATION_SERVICE_NAME,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        ]
        if self.authenticator is not None:
            services.append(KEY_SERVICE_NAME)
        reflection.enable_server_reflection(services, self._server)
        if self._listeners.http is not None:
            self._http = self._http_face(rpcs, self._listeners.http)
        await self._server.start()
        if self._http is not None:
            await self._http.start()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._serving = True
        loop = asyncio.get_running_loop()

        def notify(available: bool) -> None:  # runs in a database worker thread
            loop.call_soon_threadsafe(self._storage_changed, available)

        self.engine.on_availability = notify
        self._storage_probe = asyncio.create_task(self._probe_storage(), name="storage-probe")
        return self.port

    async def _repair_derived_tables(self) -> None:
        """Before the first write and before readiness: complete the derived rows a crash left out."""
        report = await self.store.repair_after_start()
        _log.info(
            "derived_tables_checked",
            scope=report.scope.describe(),
            revisions_checked=report.candidates,
            repaired=report.corrections,
            repaired_by_table=report.by_table(),
            unexplained=sum(len(table.unexplained) for table in report.tables),
            duration_ms=round(report.duration_s * 1000, 1),
        )
        if self.metrics is not None:
            self.metrics.repaired({table.table: len(table.corrections) for table in report.tables})

    def _http_face(self, rpcs: list[Rpc], listener: socket.socket) -> HttpServer:
        """Connect and gRPC-Web for the same RPC table and call policy, with CORS, health and static files."""
        settings = self.settings
        assert settings.http_listen is not None  # start() checks
        cors = CorsPolicy(settings.cors_origins)
        tls = None
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            tls = TlsFiles(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
        app = HttpApp(
            rpcs=RpcApplication(rpcs, self.calls, is_cross_origin=cors.is_cross_origin),
            cors=cors,
            ready=lambda: self._serving and self._storage_available,
            assets=load_assets(),
            tls=tls is not None,
        )
        return HttpServer(app, address=settings.http_listen, listener=listener, tls=tls)

    @property
    def public_url(self) -> str:
        """The base URL people reach the console at (console links point there): FEEDBACK_PUBLIC_URL, else
        the HTTP face's own address (a wildcard host shown as localhost); '' without either."""
        if self.settings.public_url:
            return self.settings.public_url
        if self.settings.http_listen is None or self.http_port is None:
            return ""
        host = self.settings.http_listen.rsplit(":", 1)[0]
        if host in _WILDCARD_HOSTS:
            host = "localhost"
        scheme = "https" if self.settings.tls_cert_file else "http"
        return f"{scheme}://{host}:{self.http_port}"

    @property
    def metrics_port(self) -> int | None:
        """The port /metrics is served on (FEEDBACK_METRICS_LISTEN may say 0), or None: no endpoint."""
        endpoint = self._listeners.metrics_endpoint
        return None if endpoint is None else endpoint.port

    def _storage_changed(self, available: bool) -> None:
        """Readiness follows the database: the feedback service is NOT_SERVING while it is unreachable.

        The overall status ("") stays SERVING, so liveness probes do not restart a healthy process
        because of a database outage.
        """
        status = health_pb2.HealthCheckResponse.SERVING if available else health_pb2.HealthCheckResponse.NOT_SERVING
        _log.warning("storage_available" if available else "storage_unavailable")
        self._storage_available = available
        self._pending_health = asyncio.ensure_future(self.health.set(SERVICE_NAME, status))

    async def _probe_storage(self) -> None:
        """Notice an outage, and the recovery after it, without waiting for traffic."""
        while True:
            await asyncio.sleep(STORAGE_PROBE_S)
            with contextlib.suppress(FeedbackServiceError):
                await self.engine.run(lambda client: client.query("SELECT 1"))

    async def stop(self, grace_s: float | None = None) -> None:
        """Health NOT_SERVING, end the following streams at once (UNAVAILABLE, "server shutting down": they
        would never end by themselves), drain the other calls in flight for up to the grace, flush the
        batcher, close the database, then stop serving metrics and export the last spans."""
        grace = self.settings.shutdown_grace_s if grace_s is None else grace_s
        if self._storage_probe is not None:
            self._storage_probe.cancel()
        self._serving = False
        await self.health.enter_graceful_shutdown()
        self.calls.shut_down()
        await asyncio.gather(self._server.stop(grace), self._stop_http(grace))
        await self.store.close()
        await asyncio.to_thread(self.engine.close)
        await asyncio.to_thread(self._listeners.close)
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)
        _log.info("stopped")

    async def _stop_http(self, grace_s: float) -> None:
        if self._http is not None:
            await self._http.stop(grace_s)
            self._http = None


def _with_admin_key(settings: Settings) -> Settings:
    """Auth on, embedded engine, no admin key given: use (or create) the local one and say where it is."""
    if settings.insecure_no_auth:
        _log.warning(
            "authentication_disabled",
            detail="--insecure-no-auth: every caller may read, write and delete every project; local use only",
        )
        return settings
    if settings.configured_admin_key() or settings.clickhouse_url:
        return settings
    key, path, created = ensure_local_admin_key(settings.data_dir)
    if created:
        print(f"Created the local admin key (valid for every project and scope), saved in {path}:\n  {key}", flush=True)
    _log.info("local_admin_key", path=str(path))
    return dataclasses.replace(settings, admin_key=key)


def _with_token_secret(settings: Settings) -> Settings:
    """Embedded engine, no FEEDBACK_TOKEN_SECRETS: use (or create) a local signing secret in the data dir,
    so that end-user feedback tokens work out of the box."""
    if settings.token_secrets or settings.clickhouse_url:
        return settings
    secret, path, created = ensure_local_token_secret(settings.data_dir)
    _log.info("local_token_secret", path=str(path), created=created)
    return dataclasses.replace(settings, token_secrets=(secret,))


async def serve(settings: Settings) -> None:
    """Bind the ports, then (and only then) write the local secrets and start; run until SIGTERM or
    SIGINT, then shut down gracefully."""
    listeners = Listeners(settings)
    listeners.bind()  # a port in use fails here, before the admin key, the data dir lock or a migration
    settings = _with_token_secret(_with_admin_key(settings))
    server = FeedbackServer(settings, listeners=listeners)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    port = await server.start()
    host = settings.listen.rsplit(":", 1)[0]
    http = None
    if settings.http_listen is not None and server.http_port is not None:
        scheme = "https" if settings.tls_cert_file else "http"
        http = f"{scheme}://{settings.http_listen.rsplit(':', 1)[0]}:{server.http_port}"
    _log.info("listening", address=f"{host}:{port}", http_address=http, storage=server.engine.config.describe)
    try:
        await stopping.wait()
        _log.info("shutting_down", grace_s=settings.shutdown_grace_s)
    finally:
        await server.stop()
