"""The browser SDK and <feedback-thumbs> in a real browser (and in Node 20) against the real service.

The service runs as a subprocess (``feedback serve``, embedded engine in a temp dir) with its HTTP face
on a free loopback port, FEEDBACK_CORS_ORIGINS naming the origin of one test page server and not of
another, and FEEDBACK_TOKEN_SECRETS set here, so the tests mint the tokens. Each browser test runs one
scenario of clients/js/test/browser/scenarios.mjs in headless Chromium (npm playwright-core, Debian's
/usr/bin/chromium): the page loads the widget from the service (/sdk/feedback-web.js, the committed
bundle) and the test then reads what was stored back over gRPC. Screenshots of each state go to
build/screenshots/. A missing Chromium or npm install fails these tests; they are never skipped.
"""

from __future__ import annotations

import base64
import functools
import json
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import grpc
import pytest

from feedback_client.tokens import hash_user_id, mint_feedback_token
from feedback_proto.v1 import feedback_pb2, feedback_service_pb2_grpc
from feedback_proto.v1 import feedback_service_pb2 as pb
from tests.support.auth import ADMIN_KEY
from tests.support.ports import free_port
from tests.support.server_process import ServerProcess, child_environment

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "clients" / "js"
PAGES = JS / "test" / "browser"
EXAMPLE = ROOT / "examples" / "web"
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "build" / "screenshots"
SECRET = secrets.token_urlsafe(32)
PROJECT = "web-demo"
MODEL, VERSION = "support-bot", "v9"
USER = "customer-42"
SCENARIO_TIMEOUT_S = 180


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the page requests are not worth a line each
        pass


class PageServer:
    """A static file server for the test pages on its own loopback port: its own browser origin."""

    def __init__(self, directory: Path) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(directory)))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def toolchain() -> None:
    """Chromium and the npm packages, or a loud failure; dist/ built for the Node test."""
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: apt-get install -y chromium (.ci/run does it)")
    if not (JS / "node_modules" / "playwright-core").is_dir():
        pytest.fail("clients/js has no node_modules: run `npm ci` in clients/js (make test does it)")
    subprocess.run(["node", "scripts/build.mjs", "--dist"], cwd=JS, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def allowed_pages() -> Iterator[PageServer]:
    pages = PageServer(PAGES)
    yield pages
    pages.close()


@pytest.fixture(scope="module")
def refused_pages() -> Iterator[PageServer]:
    pages = PageServer(PAGES)
    yield pages
    pages.close()


@pytest.fixture(scope="module")
def example_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, allowed_pages: PageServer, example_port: int, toolchain: None
) -> Iterator[ServerProcess]:
    environment = {
        "FEEDBACK_HTTP_LISTEN": "127.0.0.1:0",
        "FEEDBACK_CORS_ORIGINS": f"{allowed_pages.origin},http://127.0.0.1:{example_port}",
        "FEEDBACK_TOKEN_SECRETS": SECRET,
    }
    with ServerProcess(tmp_path_factory.mktemp("browser") / "data", env=environment) as server:
        yield server


def http_url(server: ServerProcess) -> str:
    for event in server.log_events():
        if event.get("event") == "listening" and event.get("http_address"):
            return str(event["http_address"])
    raise AssertionError(f"the service logged no http_address:\n{server.log_text()[-4000:]}")


def new_trace() -> str:
    return secrets.token_hex(16)


def mint(trace_id: str, **changes: Any) -> str:
    arguments: dict[str, Any] = {
        "project": PROJECT,
        "trace_id": trace_id,
        "user_id": USER,
        "keys": ["thumbs"],
        "value_kinds": ["thumb", "comment"],
        "model": MODEL,
        "model_version": VERSION,
        **changes,
    }
    return mint_feedback_token(SECRET, **arguments)


def page_url(pages: PageServer, server: ServerProcess, token: str) -> str:
    return f"{pages.origin}/widget.html?{urlencode({'service': http_url(server), 'token': token})}"


def run_scenario(scenario: str, url: str, server: ServerProcess, **extra: Any) -> dict[str, Any]:
    config = {"scenario": scenario, "pageUrl": url, "screenshots": str(SCREENSHOTS), **extra}
    done = subprocess.run(
        ["node", "test/browser/scenarios.mjs", json.dumps(config)],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"browser scenario {scenario} failed ({done.returncode}); screenshots in {SCREENSHOTS}\n"
            f"stdout: {done.stdout}\nstderr: {done.stderr}\nserver log (end):\n{server.log_text()[-4000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def stored(server: ServerProcess, trace_id: str, project: str = PROJECT) -> list[feedback_pb2.Feedback]:
    """The current feedback on a trace, read over gRPC with the admin key."""
    with grpc.insecure_channel(server.target) as channel:
        stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
        response = stub.ListFeedback(
            pb.ListFeedbackRequest(project=project, trace_id=trace_id),
            metadata=[("authorization", f"Bearer {ADMIN_KEY}")],
            timeout=30,
        )
        return list(response.feedback)


def test_a_user_votes_up_then_down_and_comments_and_one_vote_with_the_comment_is_stored(
    service: ServerProcess, allowed_pages: PageServer
) -> None:
    trace = new_trace()
    comment = "The return window is 30 days, not 14."
    result = run_scenario("vote", page_url(allowed_pages, service, mint(trace)), service, comment=comment)
    assert result["states"] == ["sending", "saved", "sending", "saved", "sending", "saved"]
    assert result["pressed"] == ["false", "true"]
    assert result["status"] == "Thanks, your feedback is saved."
    [feedback] = stored(service, trace)
    assert feedback.thumb == feedback_pb2.THUMB_DOWN
    assert feedback.comment == comment
    assert feedback.author == hash_user_id(PROJECT, USER)
    assert (feedback.model, feedback.model_version, feedback.key) == (MODEL, VERSION, "thumbs")
    assert feedback.source == feedback_pb2.SOURCE_USER


def test_a_page_on_an_origin_not_allowed_is_refused_by_cors_and_shows_the_error(
    service: ServerProcess, refused_pages: PageServer
) -> None:
    trace = new_trace()
    result = run_scenario("refused", page_url(refused_pages, service, mint(trace)), service)
    assert result["state"] == "error"
    assert result["status"].startswith("Could not save: the feedback service could not be reached")
    assert result["pressed"] == ["false", "false"]
    assert any("CORS" in line for line in result["console"]), result["console"]
    assert stored(service, trace) == []


def test_a_tampered_token_shows_the_servers_error_and_stores_nothing(
    service: ServerProcess, allowed_pages: PageServer
) -> None:
    trace = new_trace()
    head, payload, signature = mint(trace).split(".")
    claims = json.loads(_unb64(payload))
    claims["usr"] = "u_someone-else"  # a user trying to vote as someone else
    tampered = f"{head}.{_b64(json.dumps(claims).encode())}.{signature}"
    result = run_scenario("tampered", page_url(allowed_pages, service, tampered), service)
    assert result["state"] == "error"
    assert result["status"] == (
        "Could not save: the token signature is invalid: it was altered or signed with another secret"
    )
    assert stored(service, trace) == []


def test_an_expired_token_shows_the_servers_error_and_stores_nothing(
    service: ServerProcess, allowed_pages: PageServer
) -> None:
    trace = new_trace()
    expired = mint(trace, ttl_s=3600, now=time.time() - 2 * 3600)
    result = run_scenario("expired", page_url(allowed_pages, service, expired), service)
    assert result["state"] == "error"
    assert "expired" in result["status"]
    assert result["status"].startswith("Could not save: the feedback token expired at ")
    assert stored(service, trace) == []


def test_a_vote_given_offline_is_queued_and_stored_once_when_back_online(
    service: ServerProcess, allowed_pages: PageServer
) -> None:
    trace = new_trace()
    result = run_scenario("offline", page_url(allowed_pages, service, mint(trace)), service)
    assert result["states"] == ["sending", "queued", "sending", "saved"]
    [feedback] = stored(service, trace)
    assert feedback.thumb == feedback_pb2.THUMB_DOWN
    assert feedback.author == hash_user_id(PROJECT, USER)


def test_a_vote_given_just_before_the_page_closes_still_arrives(
    service: ServerProcess, allowed_pages: PageServer
) -> None:
    trace = new_trace()
    run_scenario("leave", page_url(allowed_pages, service, mint(trace)), service)
    deadline = time.monotonic() + 30
    while not (found := stored(service, trace)) and time.monotonic() < deadline:
        time.sleep(0.1)  # the request outlived its page: nothing tells when it lands
    [feedback] = found
    assert feedback.thumb == feedback_pb2.THUMB_UP


def test_node_backends_mint_tokens_the_service_accepts_and_send_over_every_transport(service: ServerProcess) -> None:
    traces = {name: new_trace() for name in ("fetch", "connect", "grpcweb", "grpc")}
    config = {
        "http": http_url(service),
        "grpc": f"http://{service.target}",
        "secret": SECRET,
        "project": PROJECT,
        "userId": USER,
        "model": MODEL,
        "modelVersion": VERSION,
        "traceIds": traces,
    }
    done = subprocess.run(
        ["node", "test/browser/node_client.mjs", json.dumps(config)],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{service.log_text()[-4000:]}"
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for name, trace in traces.items():
        [feedback] = stored(service, trace)  # the down vote replaced the up vote
        assert (feedback.thumb, feedback.comment) == (feedback_pb2.THUMB_DOWN, f"sent by {name}"), name
        assert feedback.author == hash_user_id(PROJECT, USER)
        assert (feedback.model, feedback.model_version) == (MODEL, VERSION)
        assert results[name]["down"]["feedbackId"] == feedback.feedback_id
        refused = results[name]["refused"]
        assert refused["code"] == "invalid_argument", (name, refused)
        assert refused["reason"] == "INVALID_REQUEST", (name, refused)
        assert [v["field"] for v in refused["fieldViolations"]] == ["feedback.score"], (name, refused)


def test_the_web_example_mints_a_token_in_node_and_its_page_stores_the_vote_and_comment(
    service: ServerProcess, example_port: int
) -> None:
    """examples/web as README "Feedback from a web page" runs it; its picture is docs/web-feedback.png."""
    if not (EXAMPLE / "node_modules" / "@feedback-service" / "web").exists():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=EXAMPLE, check=True, timeout=120)
    environment = child_environment(
        {"FEEDBACK_URL": http_url(service), "FEEDBACK_TOKEN_SECRET": SECRET, "PORT": str(example_port)}
    )
    comment = "Sale items only have 14 days."
    with subprocess.Popen(
        ["node", "server.mjs"],
        cwd=EXAMPLE,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as backend:
        try:
            assert backend.stdout is not None
            assert backend.stdout.readline().strip() == f"open http://127.0.0.1:{example_port}"
            url = f"http://127.0.0.1:{example_port}/"
            result = run_scenario("example", url, service, comment=comment, viewport={"width": 720, "height": 440})
        finally:
            backend.kill()
    [feedback] = stored(service, result["trace"], project="demo")
    assert (feedback.thumb, feedback.comment) == (feedback_pb2.THUMB_DOWN, comment)
    assert (feedback.model, feedback.model_version) == ("support-bot", "v8")
    assert feedback.author == hash_user_id("demo", "customer-42")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
