"""TLS when a certificate is configured, and mutual TLS when a client CA is; certificates made by the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_proto.v1 import feedback_service_pb2_grpc
from feedback_service.config import Settings
from feedback_service.server import FeedbackServer
from tests.support.auth import ADMIN_KEY
from tests.support.certificates import Pem, make_pki

METADATA = (("authorization", f"Bearer {ADMIN_KEY}"),)


async def _list(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    channel = (
        grpc.aio.secure_channel(target, credentials) if credentials is not None else grpc.aio.insecure_channel(target)
    )
    async with channel:
        stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
        try:
            await stub.ListFeedback(pb.ListFeedbackRequest(project="tls"), metadata=METADATA, timeout=5)
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


async def _serve(engine_dir: Path, *, server_pem: Pem, client_ca: Path | None = None) -> FeedbackServer:
    settings = Settings(
        listen="127.0.0.1:0",
        http_listen=None,
        data_dir=engine_dir,
        clickhouse_database="tls_tests",
        admin_key=ADMIN_KEY,
        tls_cert_file=server_pem.certificate,
        tls_key_file=server_pem.key,
        tls_client_ca_file=client_ca,
    )
    server = FeedbackServer(settings)
    await server.start()
    return server


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pem, Pem, Pem]:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def tls_server(engine_dir: Path, pki: tuple[Pem, Pem, Pem]) -> AsyncIterator[FeedbackServer]:
    _, server_pem, _ = pki
    server = await _serve(engine_dir, server_pem=server_pem)
    yield server
    await server.stop(grace_s=1)


@pytest.fixture
async def mtls_server(engine_dir: Path, pki: tuple[Pem, Pem, Pem]) -> AsyncIterator[FeedbackServer]:
    ca, server_pem, _ = pki
    server = await _serve(engine_dir, server_pem=server_pem, client_ca=ca.certificate)
    yield server
    await server.stop(grace_s=1)


async def test_a_tls_server_serves_tls_clients_only(tls_server: FeedbackServer, pki: tuple[Pem, Pem, Pem]) -> None:
    ca, _, _ = pki
    target = f"127.0.0.1:{tls_server.port}"
    trusted = grpc.ssl_channel_credentials(root_certificates=ca.certificate.read_bytes())
    assert await _list(target, trusted) == grpc.StatusCode.OK
    assert await _list(target, None) == grpc.StatusCode.UNAVAILABLE  # plain text is refused
    untrusted = grpc.ssl_channel_credentials()  # system roots do not know the test CA
    assert await _list(target, untrusted) == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_requires_a_client_certificate(mtls_server: FeedbackServer, pki: tuple[Pem, Pem, Pem]) -> None:
    ca, _, client = pki
    target = f"127.0.0.1:{mtls_server.port}"
    certificate, key = client.read()
    with_certificate = grpc.ssl_channel_credentials(
        root_certificates=ca.certificate.read_bytes(), private_key=key, certificate_chain=certificate
    )
    assert await _list(target, with_certificate) == grpc.StatusCode.OK
    without = grpc.ssl_channel_credentials(root_certificates=ca.certificate.read_bytes())
    assert await _list(target, without) == grpc.StatusCode.UNAVAILABLE


def test_half_a_tls_configuration_is_refused(pki: tuple[Pem, Pem, Pem], engine_dir: Path) -> None:
    from feedback_service.config import ConfigError

    _, server_pem, _ = pki
    with pytest.raises(ConfigError, match="set both or neither"):
        Settings(data_dir=engine_dir, tls_cert_file=server_pem.certificate).server_credentials()
