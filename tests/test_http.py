"""The HTTP face: Connect (JSON and binary, unary, GET and server streaming) and gRPC-Web over real HTTP
against the real server, the same error model, deadlines, CORS and the origin rule for API keys, health.

Everything here goes over loopback HTTP with httpx; the Connect and gRPC-Web framing is built by hand."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import socket
import struct
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from feedback_proto.v1 import feedback_pb2, feedback_service_pb2_grpc
from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_service.config import ConfigError, Settings, load_settings
from feedback_service.server import FeedbackServer
from feedback_service.web.app import HttpApp
from feedback_service.web.cors import CorsPolicy
from feedback_service.web.serve import HttpServer
from feedback_service.web.static import load_assets
from tests.helpers import thumbs_up
from tests.support.auth import ADMIN_KEY, ALLOWED_ORIGIN
from tests.support.clickhouse_http import ClickHouseHttpFixture
from tests.support.server_process import ServerProcess, run_cli
from tests.test_auth import create_key

M = TypeVar("M", bound=Message)

FEEDBACK = "/feedback.v1.FeedbackService"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
JSON = {"content-type": "application/json"}
PROTO = {"content-type": "application/proto"}
FOREIGN_ORIGIN = "https://evil.example.net"


@pytest.fixture
async def http(http_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=http_url, timeout=30) as client:
        yield client


def _thumb_json(project: str, **fields: Any) -> dict[str, Any]:
    return json_format.MessageToDict(thumbs_up(project, **fields))


def envelope(message: bytes, flags: int = 0) -> bytes:
    """One message in the framing Connect streams and gRPC-Web share: flags, big-endian length, bytes."""
    return struct.pack(">BI", flags, len(message)) + message


def envelopes(body: bytes) -> list[tuple[int, bytes]]:
    frames, at = [], 0
    while at < len(body):
        flags, size = struct.unpack(">BI", body[at : at + 5])
        frames.append((flags, body[at + 5 : at + 5 + size]))
        at += 5 + size
    assert at == len(body), "a truncated frame"
    return frames


def error_detail(error: Mapping[str, Any], message_class: type[M]) -> M:
    """The detail of ``message_class``'s type in a Connect error JSON (``details``: type + base64 value)."""
    name = message_class.DESCRIPTOR.full_name
    for detail in error.get("details", ()):
        if detail["type"] == name:
            return message_class.FromString(base64.b64decode(detail["value"] + "=" * (-len(detail["value"]) % 4)))
    raise AssertionError(f"no {name} in {error}")


def violations(error: Mapping[str, Any]) -> dict[str, str]:
    bad_request = error_detail(error, error_details_pb2.BadRequest)
    return {v.field: v.description for v in bad_request.field_violations}


# -- Connect unary: JSON, binary, GET -----------------------------------------------------------------------


async def test_connect_json_creates_and_gets_what_grpc_sees(
    http: httpx.AsyncClient, stub: feedback_service_pb2_grpc.FeedbackServiceAsyncStub, project: str
) -> None:
    sent = _thumb_json(project, author="user-17", comment="helpful")
    response = await http.post(f"{FEEDBACK}/CreateFeedback", json={"feedback": sent}, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    created = response.json()["feedback"]
    assert (created["project"], created["traceId"], created["comment"]) == (project, sent["traceId"], "helpful")
    assert (created["revision"], created["createdBy"]) == ("1", "bootstrap-admin")

    got = await http.post(
        f"{FEEDBACK}/GetFeedback", json={"project": project, "feedbackId": created["feedbackId"]}, headers=ADMIN
    )
    assert got.status_code == 200, got.text
    assert got.json()["feedback"] == created
    # The same record over gRPC: one implementation behind both transports.
    over_grpc = await stub.GetFeedback(pb.GetFeedbackRequest(project=project, feedback_id=created["feedbackId"]))
    assert json_format.MessageToDict(over_grpc.feedback) == created


async def test_connect_binary_round_trips_the_generated_messages(http: httpx.AsyncClient, project: str) -> None:
    request = pb.CreateFeedbackRequest(feedback=thumbs_up(project, feedback_id=f"bin-{uuid.uuid4().hex}"))
    response = await http.post(
        f"{FEEDBACK}/CreateFeedback", content=request.SerializeToString(), headers={**ADMIN, **PROTO}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/proto"
    created = pb.CreateFeedbackResponse.FromString(response.content).feedback
    assert (created.feedback_id, created.project) == (request.feedback.feedback_id, project)
    # A retry under the same feedback id is the same record (idempotent create, whatever the transport).
    again = await http.post(
        f"{FEEDBACK}/CreateFeedback", content=request.SerializeToString(), headers={**ADMIN, **PROTO}
    )
    assert pb.CreateFeedbackResponse.FromString(again.content).feedback == created


async def test_reads_without_side_effects_are_served_over_get(http: httpx.AsyncClient, project: str) -> None:
    created = await http.post(f"{FEEDBACK}/CreateFeedback", json={"feedback": _thumb_json(project)}, headers=ADMIN)
    feedback_id = created.json()["feedback"]["feedbackId"]
    query = urllib.parse.urlencode({"encoding": "json", "message": json.dumps({"project": project})})
    listed = await http.get(f"{FEEDBACK}/ListFeedback?{query}", headers=ADMIN)
    assert listed.status_code == 200, listed.text
    assert [f["feedbackId"] for f in listed.json()["feedback"]] == [feedback_id]
    binary = pb.GetFeedbackRequest(project=project, feedback_id=feedback_id).SerializeToString()
    query = urllib.parse.urlencode(
        {"encoding": "proto", "base64": "1", "message": base64.urlsafe_b64encode(binary).decode().rstrip("=")}
    )
    got = await http.get(f"{FEEDBACK}/GetFeedback?{query}", headers=ADMIN)
    assert got.status_code == 200, got.text
    assert pb.GetFeedbackResponse.FromString(got.content).feedback.feedback_id == feedback_id
    # A write is never served over GET.
    query = urllib.parse.urlencode({"encoding": "json", "message": json.dumps({"feedback": _thumb_json(project)})})
    refused = await http.get(f"{FEEDBACK}/CreateFeedback?{query}", headers=ADMIN)
    assert refused.status_code == 405
    assert refused.headers["allow"] == "POST"


# -- streams and gRPC-Web ---------------------------------------------------------------------------------


async def test_export_streams_over_connect_with_an_end_of_stream_message(http: httpx.AsyncClient, project: str) -> None:
    for n in range(3):
        await http.post(
            f"{FEEDBACK}/CreateFeedback", json={"feedback": _thumb_json(project, feedback_id=f"e{n}")}, headers=ADMIN
        )
    request = json.dumps({"filter": {"project": project}, "chunkSize": 2}).encode()
    async with http.stream(
        "POST",
        f"{FEEDBACK}/ExportFeedback",
        content=envelope(request),
        headers={**ADMIN, "content-type": "application/connect+json"},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/connect+json"
        frames = envelopes(await response.aread())
    *messages, (end_flags, end) = frames
    assert (end_flags, json.loads(end)) == (0x02, {}), "ends with an end-of-stream message without error"
    chunks = [json.loads(payload) for flags, payload in messages if flags == 0]
    assert [len(chunk["feedback"]) for chunk in chunks] == [2, 1]
    assert [f["feedbackId"] for chunk in chunks for f in chunk["feedback"]] == ["e0", "e1", "e2"]
    assert all(chunk["cursor"] for chunk in chunks)


async def test_grpc_web_unary_answers_in_frames_with_trailers(http: httpx.AsyncClient, project: str) -> None:
    request = pb.CreateFeedbackRequest(feedback=thumbs_up(project, feedback_id="web-1"))
    headers = {**ADMIN, "content-type": "application/grpc-web+proto", "x-grpc-web": "1"}
    response = await http.post(
        f"{FEEDBACK}/CreateFeedback", content=envelope(request.SerializeToString()), headers=headers
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/grpc-web+proto"
    (data_flags, data), (trailer_flags, trailers) = envelopes(response.content)
    assert data_flags == 0
    assert pb.CreateFeedbackResponse.FromString(data).feedback.feedback_id == "web-1"
    assert (trailer_flags, trailers) == (0x80, b"grpc-status: 0\r\n")

    # An error: INVALID_ARGUMENT with the same google.rpc.Status details gRPC sends.
    bad = pb.CreateFeedbackRequest(feedback=feedback_pb2.Feedback(project=project, key="thumbs"))
    failed = await http.post(f"{FEEDBACK}/CreateFeedback", content=envelope(bad.SerializeToString()), headers=headers)
    status_lines = dict(
        line.split(": ", 1)
        for _, payload in envelopes(failed.content)
        for line in payload.decode().split("\r\n")
        if line
    )
    status_lines.update({k: v for k, v in failed.headers.items() if k.startswith("grpc-")})
    assert status_lines["grpc-status"] == str(grpc.StatusCode.INVALID_ARGUMENT.value[0])
    packed = status_lines["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(base64.b64decode(packed + "=" * (-len(packed) % 4)))
    bad_request = error_details_pb2.BadRequest()
    assert any(detail.Unpack(bad_request) for detail in status.details)
    assert "feedback.trace_id" in {v.field for v in bad_request.field_violations}


# -- the error model --------------------------------------------------------------------------------------


async def test_bad_input_is_invalid_argument_with_every_field_violation(http: httpx.AsyncClient, project: str) -> None:
    bad = {"feedback": {"project": project, "key": "thumbs", "score": "NaN"}}
    response = await http.post(f"{FEEDBACK}/CreateFeedback", json=bad, headers=ADMIN)
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "invalid_argument"
    assert set(violations(error)) >= {"feedback.trace_id", "feedback.score"}
    assert error_detail(error, error_details_pb2.ErrorInfo).reason == "INVALID_REQUEST"
    # A body that is not a message: the same field violation as gRPC gives for undecodable bytes.
    garbled = await http.post(f"{FEEDBACK}/CreateFeedback", content=b"{not json", headers={**ADMIN, **JSON})
    assert garbled.status_code == 400
    assert "request" in violations(garbled.json())


async def test_credentials_are_checked_as_on_grpc(
    http: httpx.AsyncClient, server: FeedbackServer, project: str
) -> None:
    body = {"feedback": _thumb_json(project)}
    missing = await http.post(f"{FEEDBACK}/CreateFeedback", json=body)
    assert (missing.status_code, missing.json()["code"]) == (401, "unauthenticated")
    assert error_detail(missing.json(), error_details_pb2.ErrorInfo).reason == "UNAUTHENTICATED"
    unknown = await http.post(f"{FEEDBACK}/CreateFeedback", json=body, headers={"authorization": "Bearer fbk_nope"})
    assert (unknown.status_code, unknown.json()["code"]) == (401, "unauthenticated")
    reader = await create_key(server, project, "read")
    wrong_scope = await http.post(
        f"{FEEDBACK}/CreateFeedback", json=body, headers={"authorization": f"Bearer {reader}"}
    )
    assert (wrong_scope.status_code, wrong_scope.json()["code"]) == (403, "permission_denied")
    other_project = await http.post(
        f"{FEEDBACK}/ListFeedback", json={"project": "someone-else"}, headers={"authorization": f"Bearer {reader}"}
    )
    assert (other_project.status_code, other_project.json()["code"]) == (403, "permission_denied")


@pytest.fixture(scope="module")
async def limited_http(engine_dir: Path) -> AsyncIterator[FeedbackServer]:
    settings = Settings(
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        data_dir=engine_dir,
        clickhouse_database="http_limit_tests",
        admin_key=ADMIN_KEY,
        metrics_listen="127.0.0.1:0",
        rate_limit_per_s=0.001,  # refilled so slowly that the test's own pace cannot matter
        rate_limit_burst=20,
    )
    server = FeedbackServer(settings)
    await server.start()
    yield server
    await server.stop(grace_s=1)


async def test_over_the_rate_limit_is_resource_exhausted_with_retry_info(limited_http: FeedbackServer) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    key = await create_key(limited_http, project, "ingest")
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{limited_http.http_port}") as http:
        for _ in range(2):  # 15 units each, against a burst of 20: the second batch finds the bucket short
            batch = {"feedback": [_thumb_json(project) for _ in range(15)]}
            response = await http.post(f"{FEEDBACK}/BatchCreateFeedback", json=batch, headers=headers)
    assert response.status_code == 429
    error = response.json()
    assert error["code"] == "resource_exhausted"
    retry = error_detail(error, error_details_pb2.RetryInfo)
    assert retry.retry_delay.ToTimedelta().total_seconds() > 1


async def test_the_log_line_metrics_and_method_are_the_ones_of_grpc(limited_http: FeedbackServer) -> None:
    assert limited_http.metrics_port is not None
    scrape = f"http://127.0.0.1:{limited_http.metrics_port}/metrics"
    labels = 'code="INVALID_ARGUMENT",method="CreateFeedback",service="feedback.v1.FeedbackService"'

    async def count() -> float:
        async with httpx.AsyncClient() as http:
            text = (await http.get(scrape)).text
        lines = [line for line in text.splitlines() if line.startswith(f"feedback_rpcs_total{{{labels}}}")]
        return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0

    before = await count()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{limited_http.http_port}") as http:
        response = await http.post(f"{FEEDBACK}/CreateFeedback", json={"feedback": {}}, headers=ADMIN)
    assert response.status_code == 400
    assert await count() == before + 1


async def test_connect_timeout_ms_is_the_call_deadline(http: httpx.AsyncClient, project: str) -> None:
    # A following export never ends by itself: the deadline ends it, as grpc-timeout does on gRPC.
    request = json.dumps({"filter": {"project": project}, "follow": True}).encode()
    began = time.monotonic()
    response = await http.post(
        f"{FEEDBACK}/ExportFeedback",
        content=envelope(request),
        headers={**ADMIN, "content-type": "application/connect+json", "connect-timeout-ms": "300"},
    )
    elapsed = time.monotonic() - began
    (end_flags, end) = envelopes(response.content)[-1]
    assert end_flags == 0x02
    assert json.loads(end)["error"]["code"] == "deadline_exceeded"
    assert 0.25 < elapsed < 10


async def test_grpc_without_web_framing_is_sent_to_the_grpc_port(http: httpx.AsyncClient) -> None:
    response = await http.post(
        f"{FEEDBACK}/ListFeedback", content=envelope(b""), headers={"content-type": "application/grpc"}
    )
    assert response.status_code == 415
    assert "FEEDBACK_LISTEN" in response.json()["message"]


# -- CORS and the origin rule -----------------------------------------------------------------------------


async def test_a_preflight_from_a_listed_origin_allows_what_connect_and_grpc_web_send(http: httpx.AsyncClient) -> None:
    requested = "authorization, content-type, connect-protocol-version, connect-timeout-ms, x-grpc-web, x-user-agent"
    response = await http.options(
        f"{FEEDBACK}/CreateFeedback",
        headers={
            "origin": ALLOWED_ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": requested,
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert set(response.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST"}
    allowed = set(response.headers["access-control-allow-headers"].split(", "))
    assert {h.strip() for h in requested.split(",")} <= allowed
    assert int(response.headers["access-control-max-age"]) > 0
    assert "Origin" in response.headers["vary"]


async def test_a_preflight_from_another_origin_is_refused(http: httpx.AsyncClient) -> None:
    for origin, method, requested in (
        (FOREIGN_ORIGIN, "POST", "content-type"),
        (ALLOWED_ORIGIN, "DELETE", "content-type"),
        (ALLOWED_ORIGIN, "POST", "content-type, x-custom-secret"),
    ):
        response = await http.options(
            f"{FEEDBACK}/CreateFeedback",
            headers={
                "origin": origin,
                "access-control-request-method": method,
                "access-control-request-headers": requested,
            },
        )
        assert response.status_code == 403, (origin, method, requested)
        assert "access-control-allow-origin" not in response.headers


async def test_a_request_from_an_unlisted_origin_is_refused_and_does_nothing(
    http: httpx.AsyncClient, stub: feedback_service_pb2_grpc.FeedbackServiceAsyncStub, project: str
) -> None:
    response = await http.post(
        f"{FEEDBACK}/CreateFeedback",
        json={"feedback": _thumb_json(project)},
        headers={**ADMIN, "origin": FOREIGN_ORIGIN},
    )
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert "access-control-allow-origin" not in response.headers
    assert not (await stub.ListFeedback(pb.ListFeedbackRequest(project=project))).feedback


async def test_pages_of_other_origins_send_tokens_never_api_keys(
    http: httpx.AsyncClient, http_url: str, project: str
) -> None:
    body = {"feedback": _thumb_json(project)}
    # An API key from a listed origin's page: refused (keys are backend secrets), readably for the page.
    with_key = await http.post(f"{FEEDBACK}/CreateFeedback", json=body, headers={**ADMIN, "origin": ALLOWED_ORIGIN})
    assert (with_key.status_code, with_key.json()["code"]) == (403, "permission_denied")
    assert "feedback token" in with_key.json()["message"]
    assert with_key.headers["access-control-allow-origin"] == ALLOWED_ORIGIN

    # The backend mints a token over HTTP (no Origin: not a page), the page creates feedback with it.
    minted = await http.post(
        f"{FEEDBACK}/MintFeedbackToken",
        json={"project": project, "traceId": "trace-web", "userId": "customer-42", "keys": ["thumbs"]},
        headers=ADMIN,
    )
    assert minted.status_code == 200, minted.text
    token = minted.json()["token"]
    vote = {"feedback": {"key": "thumbs", "thumb": "THUMB_UP"}}
    created = await http.post(
        f"{FEEDBACK}/CreateFeedback",
        json=vote,
        headers={"authorization": f"Bearer {token}", "origin": ALLOWED_ORIGIN},
    )
    assert created.status_code == 200, created.text
    assert (created.json()["feedback"]["traceId"], created.json()["feedback"]["source"]) == ("trace-web", "SOURCE_USER")
    assert created.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "grpc-status-details-bin" in created.headers["access-control-expose-headers"]
    # The token as a request field (a page that cannot set headers) works the same.
    as_field = await http.post(
        f"{FEEDBACK}/CreateFeedback", json={**vote, "feedbackToken": token}, headers={"origin": ALLOWED_ORIGIN}
    )
    assert as_field.status_code == 200, as_field.text

    # The service's own pages (same origin) are not other origins: an API key works there.
    same_origin = await http.post(
        f"{FEEDBACK}/ListFeedback", json={"project": project}, headers={**ADMIN, "origin": http_url}
    )
    assert same_origin.status_code == 200, same_origin.text
    assert "access-control-allow-origin" not in same_origin.headers


# -- health and headers -----------------------------------------------------------------------------------


async def test_health_for_load_balancers(http: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz"):
        response = await http.get(path)
        assert (response.status_code, response.json()) == (200, {"status": "SERVING"})
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert (await http.post("/readyz")).status_code == 405
    assert (await http.get("/no/such/page")).status_code == 404


async def test_readiness_follows_the_database(engine_dir: Path) -> None:
    endpoint = ClickHouseHttpFixture(str(engine_dir))
    endpoint.start()
    settings = Settings(
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        data_dir=engine_dir,
        clickhouse_url=endpoint.url,
        clickhouse_database="http_outage_tests",
        admin_key=ADMIN_KEY,
    )
    server = FeedbackServer(settings)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}", timeout=10) as http:
            assert (await http.get("/readyz")).status_code == 200
            port = endpoint.port
            endpoint.stop()
            listed = await http.post(f"{FEEDBACK}/ListFeedback", json={"project": "outage"}, headers=ADMIN)
            assert (listed.status_code, listed.json()["code"]) == (503, "unavailable")
            ready = await http.get("/readyz")
            assert (ready.status_code, ready.json()) == (503, {"status": "NOT_SERVING"})
            assert (await http.get("/healthz")).status_code == 200, "liveness stays: the process is fine"
            endpoint = ClickHouseHttpFixture(str(engine_dir), port=port)
            endpoint.start()
            deadline = time.monotonic() + 15
            while (await http.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "readiness did not come back"
                await asyncio.sleep(0.2)
    finally:
        await server.stop(grace_s=1)
        endpoint.stop()


async def test_a_connect_call_is_traced_as_a_grpc_call_is(engine_dir: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings(
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        data_dir=engine_dir,
        clickhouse_database="http_tracing_tests",
        admin_key=ADMIN_KEY,
    )
    server = FeedbackServer(settings, tracer_provider=provider)
    await server.start()
    project = f"p{uuid.uuid4().hex[:8]}"
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}", timeout=30) as http:
            response = await http.post(
                f"{FEEDBACK}/ListFeedback",
                json={"project": project},
                headers={**ADMIN, "traceparent": f"00-{caller_trace}-{caller_span}-01"},
            )
        assert response.status_code == 200
    finally:
        await server.stop(grace_s=1)
    spans = exporter.get_finished_spans()
    (rpc,) = [span for span in spans if span.name == "feedback.v1.FeedbackService/ListFeedback"]
    assert dict(rpc.attributes or {}) == {
        "rpc.system": "connect_rpc",
        "rpc.service": "feedback.v1.FeedbackService",
        "rpc.method": "ListFeedback",
        "rpc.grpc.status_code": 0,
        "feedback.project": project,
    }
    assert rpc.parent is not None
    assert (format(rpc.parent.trace_id, "032x"), format(rpc.parent.span_id, "016x")) == (caller_trace, caller_span)
    children = [span for span in spans if span.parent is not None and span.parent.span_id == rpc.context.span_id]
    assert [span.name for span in children] == ["clickhouse query"], "the database call is the RPC's child"


# -- settings ---------------------------------------------------------------------------------------------


def test_the_http_settings_parse_strictly() -> None:
    assert Settings().http_listen == "127.0.0.1:8080"
    environment = {
        "FEEDBACK_HTTP_LISTEN": "",
        "FEEDBACK_CORS_ORIGINS": "https://App.example.com, http://localhost:3000,https://shop.example:443",
    }
    settings = load_settings(argparse.Namespace(), environment)
    assert settings.http_listen is None, "empty turns the HTTP face off"
    assert settings.cors_origins == ("https://app.example.com", "http://localhost:3000", "https://shop.example")
    for bad in ("*", "https://app.example.com/", "app.example.com", "https://app.example.com/page", "ftp://x.example"):
        with pytest.raises(ConfigError, match="FEEDBACK_CORS_ORIGINS"):
            load_settings(argparse.Namespace(), {"FEEDBACK_CORS_ORIGINS": bad})
    with pytest.raises(ConfigError, match="FEEDBACK_HTTP_LISTEN"):
        load_settings(argparse.Namespace(), {"FEEDBACK_HTTP_LISTEN": "8080"})


# -- static files -----------------------------------------------------------------------------------------


async def _no_rpcs(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("no RPC expected")


async def test_the_sdk_bundle_is_served_immutable_when_the_static_dir_has_it(tmp_path: Path) -> None:
    (tmp_path / "feedback-web.js").write_text("export const version = '1';\n")
    app = HttpApp(rpcs=_no_rpcs, cors=CorsPolicy(()), ready=lambda: True, assets=load_assets(tmp_path))
    face = HttpServer(app, address="127.0.0.1:0")
    port = await face.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            bundle = await http.get("/sdk/feedback-web.js")
            assert bundle.status_code == 200
            assert bundle.text == "export const version = '1';\n"
            assert bundle.headers["content-type"].startswith("text/javascript")
            assert bundle.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert bundle.headers["access-control-allow-origin"] == "*", "a public file any page may import"
            assert bundle.headers["x-content-type-options"] == "nosniff"
            revalidated = await http.get("/sdk/feedback-web.js", headers={"if-none-match": bundle.headers["etag"]})
            assert revalidated.status_code == 304
            assert (await http.get("/")).status_code == 404, "no console in this directory"
    finally:
        await face.stop(grace_s=1)


# -- a fresh embedded server, as `make run` starts it -------------------------------------------------------


async def test_a_fresh_server_serves_both_ports_signs_tokens_and_logs_each_call_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    extra = ("--metrics-listen", "127.0.0.1:0")
    async with ServerProcess(data_dir, extra_args=extra) as first:
        secret_file = data_dir / "token.secret"
        assert secret_file.stat().st_mode & 0o777 == 0o600
        secret = secret_file.read_text()
        project = "local"
        async with httpx.AsyncClient(base_url=first.http_url, timeout=30) as http:
            minted = await http.post(
                f"{FEEDBACK}/MintFeedbackToken",
                json={"project": project, "traceId": "t-1", "userId": "u-1", "keys": ["thumbs"]},
                headers=ADMIN,
            )
            assert minted.status_code == 200, minted.text
            token = minted.json()["token"]
            over_http = await http.post(
                f"{FEEDBACK}/CreateFeedback", json={"feedback": _thumb_json(project)}, headers=ADMIN
            )
            assert over_http.status_code == 200
        async with first.channel() as channel:
            stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
            await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project)), timeout=30)
        metrics_port = next(e["port"] for e in first.log_events() if e.get("event") == "metrics_listening")
        async with httpx.AsyncClient() as http:
            scraped = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        creates = 'feedback_rpcs_total{code="OK",method="CreateFeedback",service="feedback.v1.FeedbackService"} 2.0'
        assert creates in scraped, "both transports count under the same method label"
        calls = [e for e in first.log_events() if e.get("event") == "rpc" and e["method"].endswith("/CreateFeedback")]
        assert sorted(e["transport"] for e in calls) == ["connect", "grpc"], calls
        assert {(e["code"], e["key_id"]) for e in calls} == {("OK", "bootstrap-admin")}
        listening = next(e for e in first.log_events() if e.get("event") == "listening")
        assert listening["http_address"] == first.http_url
        assert await first.terminate_async() == 0
    async with ServerProcess(data_dir) as second:
        assert secret_file.read_text() == secret, "the local secret is kept"
        async with httpx.AsyncClient(base_url=second.http_url, timeout=30) as http:
            vote = {"feedback": {"key": "thumbs", "thumb": "THUMB_DOWN"}}
            created = await http.post(
                f"{FEEDBACK}/CreateFeedback", json=vote, headers={"authorization": f"Bearer {token}"}
            )
            assert created.status_code == 200, "a token minted before the restart still verifies"


async def test_an_http_port_in_use_stops_the_start_with_a_message_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        done = await asyncio.to_thread(
            run_cli,
            ["serve", "--listen", "127.0.0.1:0", "--http-listen", address, "--data-dir", str(tmp_path / "data")],
            cwd=tmp_path,
            env={"FEEDBACK_ADMIN_KEY": ADMIN_KEY},
        )
    assert done.returncode == 1
    assert f"cannot listen on {address} (FEEDBACK_HTTP_LISTEN)" in done.stderr
    assert "Traceback" not in done.stderr
