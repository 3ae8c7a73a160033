"""The reviewer console and dashboard (served at / on the HTTP port) in a real browser against the real service.

The service runs as a subprocess (``feedback serve``, embedded engine in a temp dir, FEEDBACK_TOKEN_SECRETS
set so it signs console links). Each test creates its feedback keys, queues, items and console links over
gRPC with the admin key, then runs one scenario of clients/js/test/browser/console.mjs in headless
Chromium (npm playwright-core, Debian's /usr/bin/chromium) on the committed console
(service/feedback_service/web/static/console/), and reads back over gRPC what the pages stored.
Screenshots go to build/screenshots/console-*.png; a missing Chromium or npm install fails these tests.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from feedback_proto.v1 import (
    annotation_pb2,
    annotation_pb2_grpc,
    feedback_keys_pb2,
    feedback_keys_pb2_grpc,
    feedback_pb2,
    feedback_service_pb2,
    feedback_service_pb2_grpc,
)
from tests.browser.test_widget import CHROMIUM, JS, SCREENSHOTS, http_url
from tests.support.auth import ADMIN_KEY
from tests.support.server_process import ServerProcess

SECRET = secrets.token_urlsafe(32)
MODEL = "support-bot"
SCENARIO_TIMEOUT_S = 180
AUTH = [("authorization", f"Bearer {ADMIN_KEY}")]
KEYS = ("verdict", "quality")
UP, DOWN = "1", "2"  # the digits of the verdict key's buttons: Good, Bad


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: apt-get install -y chromium (.ci/run does it)")
    if not (JS / "node_modules" / "playwright-core").is_dir():
        pytest.fail("clients/js has no node_modules: run `npm ci` in clients/js (make test does it)")
    environment = {"FEEDBACK_HTTP_LISTEN": "127.0.0.1:0", "FEEDBACK_TOKEN_SECRETS": SECRET}
    with ServerProcess(tmp_path_factory.mktemp("console") / "data", env=environment) as server:
        yield server


class Api:
    """The admin's gRPC stubs on the test server."""

    def __init__(self, server: ServerProcess) -> None:
        self._channel = grpc.insecure_channel(server.target)
        self.feedback = feedback_service_pb2_grpc.FeedbackServiceStub(self._channel)
        self.annotation = annotation_pb2_grpc.AnnotationServiceStub(self._channel)
        self.keys = feedback_keys_pb2_grpc.FeedbackKeyServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def define_keys(self, project: str) -> None:
        for key in (
            feedback_keys_pb2.FeedbackKey(
                project=project,
                name="verdict",
                kind=feedback_keys_pb2.FEEDBACK_KEY_KIND_THUMBS,
                description="Would this answer help the customer?",
            ),
            feedback_keys_pb2.FeedbackKey(
                project=project,
                name="quality",
                kind=feedback_keys_pb2.FEEDBACK_KEY_KIND_SCORE,
                score_min=1,
                score_max=5,
                score_step=1,
                higher_is_better=True,
                description="1 = useless, 5 = perfect",
            ),
        ):
            self.keys.CreateFeedbackKey(feedback_keys_pb2.CreateFeedbackKeyRequest(feedback_key=key), metadata=AUTH)

    def queue(
        self,
        project: str,
        name: str,
        items: Sequence[annotation_pb2.QueueItem],
        *,
        reviewers_per_item: int = 2,
        lease_s: int = 600,
        instructions: str = "Is the answer **right** per the [refund policy](https://example.com/policy)?",
    ) -> str:
        queue = annotation_pb2.Queue(
            project=project,
            name=name,
            keys=list(KEYS),
            instructions=instructions,
            reviewers_per_item=reviewers_per_item,
            lease=Duration(seconds=lease_s),
            trace_url_template="https://tracing.example.com/trace/{trace_id}",
        )
        queue_id: str = self.annotation.CreateQueue(
            annotation_pb2.CreateQueueRequest(queue=queue), metadata=AUTH
        ).queue.queue_id
        added = self.annotation.AddQueueItems(
            annotation_pb2.AddQueueItemsRequest(project=project, queue_id=queue_id, items=items), metadata=AUTH
        )
        assert added.added_count == len(items)
        return queue_id

    def link(self, project: str, reviewer: str, *, queue_id: str = "", read: bool = False) -> str:
        request = annotation_pb2.CreateConsoleLinkRequest(
            project=project, reviewer=reviewer, queue_id=queue_id, read=read
        )
        url: str = self.annotation.CreateConsoleLink(request, metadata=AUTH).url
        assert "#link=fbc1." in url, url
        return url

    def user_vote(self, project: str, trace_id: str, comment: str, version: str = "v9") -> None:
        feedback = feedback_pb2.Feedback(
            project=project,
            trace_id=trace_id,
            key="thumbs",
            thumb=feedback_pb2.THUMB_DOWN,
            comment=comment,
            source=feedback_pb2.SOURCE_USER,
            author="customer-7",
            model=MODEL,
            model_version=version,
        )
        self.feedback.CreateFeedback(feedback_service_pb2.CreateFeedbackRequest(feedback=feedback), metadata=AUTH)

    def stored(self, project: str, trace_id: str) -> list[feedback_pb2.Feedback]:
        request = feedback_service_pb2.ListFeedbackRequest(project=project, trace_id=trace_id, page_size=100)
        return list(self.feedback.ListFeedback(request, metadata=AUTH).feedback)


@pytest.fixture
def api(service: ServerProcess) -> Iterator[Api]:
    stubs = Api(service)
    yield stubs
    stubs.close()


def new_project() -> str:
    return f"console-{secrets.token_hex(4)}"


MARKDOWN = annotation_pb2.CONTENT_FORMAT_MARKDOWN


def item(
    trace_id: str, output: str, *, fmt: annotation_pb2.ContentFormat.ValueType = MARKDOWN, **context: str
) -> annotation_pb2.QueueItem:
    question = "How long do I have to return a sale item?"
    content = annotation_pb2.ItemContent(
        input=json.dumps({"question": question}) if fmt == annotation_pb2.CONTENT_FORMAT_JSON else question,
        output=output,
        context=context,
        format=fmt,
    )
    return annotation_pb2.QueueItem(trace_id=trace_id, model=MODEL, model_version="v9", content=content)


OUTPUTS = (
    "You have **14 days** to return sale items.\n\n- keep the receipt\n- items must be unused",
    "Sale items can be returned within *30 days*, like everything else.",
    '{"answer": "30 days", "sources": ["refund-policy.md"], "confidence": 0.72}',
    "Returns of sale items are not possible.",
    "## Returns\n\n1. Open your order\n2. Choose **Return**\n\n`30 days` for every item.",
    "Please contact support.",
)


def run_scenario(scenario: str, server: ServerProcess, **config: Any) -> dict[str, Any]:
    arguments = {"scenario": scenario, "service": http_url(server), "screenshots": str(SCREENSHOTS), **config}
    done = subprocess.run(
        ["node", "test/browser/console.mjs", json.dumps(arguments)],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT_S,
        check=False,
    )
    return _result(scenario, done.returncode, done.stdout, done.stderr, server)


def _result(scenario: str, code: int, stdout: str, stderr: str, server: ServerProcess) -> dict[str, Any]:
    if code != 0:
        raise AssertionError(
            f"console scenario {scenario} failed ({code}); screenshots in {SCREENSHOTS}\n"
            f"stdout: {stdout[-6000:]}\nstderr: {stderr[-6000:]}\nserver log (end):\n{server.log_text()[-4000:]}"
        )
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    assert result["dialogs"] == [], result["dialogs"]
    assert result["csp"] == [], f"CSP violations: {result['csp']}"
    # Chromium logs every answer other than 2xx (a claim on an empty queue is NOT_FOUND, 404); scripts log none.
    errors = [line for line in result["console"] if line.startswith(("error", "pageerror"))]
    assert [line for line in errors if "Failed to load resource" not in line] == [], result["console"]
    return result


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two raters' labels of the same items, from its definition."""
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    expected = sum((a.count(c) / n) * (b.count(c) / n) for c in set(a) | set(b))
    return (observed - expected) / (1 - expected)


def test_two_reviewers_annotate_six_items_with_the_keyboard_and_the_agreement_page_shows_their_kappa(
    service: ServerProcess, api: Api
) -> None:
    project = new_project()
    api.define_keys(project)
    traces = [secrets.token_hex(16) for _ in OUTPUTS]
    items = [
        item(trace, output, fmt=annotation_pb2.CONTENT_FORMAT_JSON if output.startswith("{") else MARKDOWN)
        for trace, output in zip(traces, OUTPUTS, strict=True)
    ]
    items[0].content.context["retrieved_document"] = "Refund policy: every item can be returned within 30 days."
    queue_id = api.queue(project, "support-bot v9 thumbs-down", items)
    for trace in traces[:3]:
        api.user_vote(project, trace, "that is wrong, it is 30 days")
    verdicts = {"alice": ["up", "up", "down", "up", "down", "up"], "bob": ["up", "down", "down", "up", "down", "down"]}
    stars = {"alice": [5, 4, 2, 4, 1, 3], "bob": [4, 4, 2, 5, 1, 2]}
    plan = {
        trace: {
            reviewer: [UP if verdicts[reviewer][n] == "up" else DOWN, str(stars[reviewer][n])] for reviewer in verdicts
        }
        for n, trace in enumerate(traces)
    }
    correction = "Sale items can be returned within 30 days, like every other item."
    links = {
        "alice": api.link(project, "alice", queue_id=queue_id),
        "bob": api.link(project, "bob", queue_id=queue_id),
        "read": api.link(project, "lead", read=True),
    }

    result = run_scenario(
        "annotate",
        service,
        links=links,
        plan=plan,
        correction=correction,
        queueId=queue_id,
        keys=list(KEYS),
        showcase=traces[0],  # the screenshot of the review page: Markdown, context and end users' feedback
    )

    assert "link=" not in result["opened"]["url"], "the link left the address bar"
    assert json.loads(result["opened"]["stored"])["token"] == links["alice"].split("#link=")[1]
    for reviewer in ("alice", "bob"):
        seen = result[reviewer]["seen"]
        assert sorted(s["trace"] for s in seen) == sorted(traces), reviewer
        assert result[reviewer]["done"] == "6 annotated in this session"
        for shown in seen:
            assert shown["traceLink"] == f"https://tracing.example.com/trace/{shown['trace']}"
            # Blind: end users' feedback only, never the other reviewer's annotations.
            expected = ["thumbs downthat is wrong, it is 30 days"] if shown["trace"] in traces[:3] else []
            assert shown["userFeedback"] == expected, (reviewer, shown)
    first_output = next(s["output"] for s in result["alice"]["seen"] if s["trace"] == traces[0])
    assert first_output == "OutputYou have 14 days to return sale items.keep the receiptitems must be unused"

    alice_first = result["alice"]["seen"][0]["trace"]
    for n, trace in enumerate(traces):
        reviewed = [f for f in api.stored(project, trace) if f.source == feedback_pb2.SOURCE_REVIEWER]
        assert sorted((f.author, f.key) for f in reviewed) == sorted(
            (reviewer, key) for reviewer in ("alice", "bob") for key in KEYS
        ), trace
        for f in reviewed:
            assert (f.trace_id, f.model, f.model_version) == (trace, MODEL, "v9")
            if f.key == "verdict":
                thumb = feedback_pb2.THUMB_UP if verdicts[f.author][n] == "up" else feedback_pb2.THUMB_DOWN
                assert f.thumb == thumb, (trace, f.author)
            else:
                assert f.score == stars[f.author][n], (trace, f.author)
            with_correction = f.author == "alice" and trace == alice_first and f.key == "verdict"
            assert f.correction == (correction if with_correction else ""), (trace, f.author, f.key)

    assert result["progress"]["done"] == "6 of 6"
    assert sorted(result["progress"]["reviewers"]) == ["alice600", "bob600"]
    assert result["progress"]["startReviewing"] == 0, "a read-only link does not review"
    kappa = cohen_kappa(verdicts["alice"], verdicts["bob"])
    assert round(kappa, 3) == 0.4
    shown = result["agreement"]["verdict"]
    # The items they disagreed on (alice up, bob down: 1 - 1/2 each), ordered by trace id, linked to their trace.
    assert shown.pop("disagreed") == [
        {"trace": trace, "link": f"https://tracing.example.com/trace/{trace}", "ratings": ["alice: up", "bob: down"]}
        for trace in sorted(traces[n] for n in (1, 5))
    ]
    assert len(result["agreement"]["quality"]["disagreed"]) == 3  # different stars on three items
    assert shown == {
        "value": f"{kappa:.3f}",
        "method": "Cohen's \N{GREEK SMALL LETTER KAPPA}",
        "items": "6",
        "reviewers": "2",
        "ratings": "12",
    }
    assert result["agreement"]["quality"]["method"] == "Krippendorff's \N{GREEK SMALL LETTER ALPHA} (interval)"


def test_a_reviewer_link_cannot_claim_as_another_reviewer_submit_their_claim_or_use_another_queue(
    service: ServerProcess, api: Api
) -> None:
    project = new_project()
    api.define_keys(project)
    traces = [secrets.token_hex(16) for _ in range(2)]
    queue_a = api.queue(project, "queue A", [item(t, "answer") for t in traces])
    queue_b = api.queue(project, "queue B", [item(secrets.token_hex(16), "answer")])
    claim = api.annotation.ClaimNextItem(
        annotation_pb2.ClaimNextItemRequest(project=project, queue_id=queue_a, reviewer="bob"), metadata=AUTH
    )

    result = run_scenario(
        "forbidden",
        service,
        links={"alice": api.link(project, "alice", queue_id=queue_a)},
        queueId=queue_a,
        otherQueueId=queue_b,
        bobsClaimId=claim.claim_id,
    )

    assert (result["asBob"]["status"], result["asBob"]["body"]["code"]) == (403, "permission_denied")
    assert (result["otherQueue"]["status"], result["otherQueue"]["body"]["code"]) == (403, "permission_denied")
    assert (result["bobsClaim"]["status"], result["bobsClaim"]["body"]["code"]) == (403, "permission_denied")
    assert "permission" in result["shown"].lower() or "queue" in result["shown"].lower(), result["shown"]
    for trace in traces:
        assert [f for f in api.stored(project, trace) if f.source == feedback_pb2.SOURCE_REVIEWER] == []


HOSTILE = (
    "<script>window.xss = 'script'; alert('script')</script>\n\n"
    "<img src=x onerror=\"window.xss = 'img'; alert('img')\">\n\n"
    "[click me](javascript:window.xss='link';alert('link')) and "
    '<a href="javascript:alert(1)">raw link</a> and <iframe src="javascript:alert(2)"></iframe>'
)


def test_content_holding_script_an_onerror_image_and_javascript_links_shows_as_text_and_runs_nothing(
    service: ServerProcess, api: Api
) -> None:
    project = new_project()
    api.define_keys(project)
    trace = secrets.token_hex(16)
    hostile = item(trace, HOSTILE, note=HOSTILE)
    hostile.content.input = HOSTILE
    queue_id = api.queue(project, "hostile <img src=x onerror=alert(9)>", [hostile], instructions=HOSTILE)
    api.user_vote(project, trace, "<img src=x onerror=\"window.xss='comment'\">")

    links = {reviewer: api.link(project, reviewer, queue_id=queue_id) for reviewer in ("alice", "bob")}
    result = run_scenario("hostile", service, links=links)

    # Under the console's CSP, and again with the CSP bypassed: the rendering alone keeps content inert.
    for page in (result, result["bypassed"]):
        assert page["xss"] is None
        assert page["injected"] == 0
        assert page["javascriptLinks"] == 0
        assert page["links"] == [f"https://tracing.example.com/trace/{trace}"], "the trace link, none from the content"
        text = page["text"]
        assert "<script>window.xss = 'script'; alert('script')</script>" in text
        assert "<img src=x onerror=\"window.xss = 'img'; alert('img')\">" in text
        assert "[click me](javascript:window.xss='link';alert('link'))" in text
        assert "<img src=x onerror=\"window.xss='comment'\">" in text


def test_the_dashboard_shows_feedback_created_over_grpc_after_the_page_loaded_without_a_reload(
    service: ServerProcess, api: Api
) -> None:
    project = new_project()
    votes = {"v7": (59, 40), "v8": (77, 24)}  # README "Evaluation loops": +16.6 points, p = 0.012
    batch = [
        feedback_pb2.Feedback(
            project=project,
            trace_id=secrets.token_hex(16),
            key="thumbs",
            thumb=feedback_pb2.THUMB_UP if n < up else feedback_pb2.THUMB_DOWN,
            source=feedback_pb2.SOURCE_USER,
            author=f"user-{n}",
            model=MODEL,
            model_version=version,
        )
        for version, (up, down) in votes.items()
        for n in range(up + down)
    ]
    batch += [
        feedback_pb2.Feedback(
            project=project,
            trace_id=secrets.token_hex(16),
            key="helpfulness",
            score={"v7": [3, 4, 4, 5, 2, 3], "v8": [4, 4, 5, 5, 3, 4]}[version][n % 6],
            source=feedback_pb2.SOURCE_REVIEWER,
            author=f"reviewer-{n % 3}",
            model=MODEL,
            model_version=version,
        )
        for version in votes
        for n in range(30)
    ]
    api.feedback.BatchCreateFeedback(feedback_service_pb2.BatchCreateFeedbackRequest(feedback=batch), metadata=AUTH)
    arguments = {
        "scenario": "dashboard",
        "service": http_url(service),
        "screenshots": str(SCREENSHOTS),
        "apiKey": ADMIN_KEY,
        "project": project,
        "model": MODEL,
        "version": "v8",
    }
    with subprocess.Popen(
        ["node", "test/browser/console.mjs", json.dumps(arguments)],
        cwd=JS,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as browser:
        assert browser.stdout is not None
        for line in browser.stdout:  # until the page shows the live dashboard
            if line.startswith('{"ready"'):
                break
        new_vote = feedback_pb2.Feedback(
            project=project,
            trace_id=secrets.token_hex(16),
            key="thumbs",
            thumb=feedback_pb2.THUMB_UP,
            source=feedback_pb2.SOURCE_USER,
            author="user-late",
            model=MODEL,
            model_version="v8",
        )
        api.feedback.CreateFeedback(feedback_service_pb2.CreateFeedbackRequest(feedback=new_vote), metadata=AUTH)
        stdout, stderr = browser.communicate(timeout=SCENARIO_TIMEOUT_S)
    result = _result("dashboard", browser.returncode, stdout, stderr, service)

    before, after = result["before"], result["after"]
    assert (before["count"], after["count"]) == ("101", "102")
    assert before["positive"].startswith("76.2% positive [67%\N{EN DASH}83%] · 77 up / 24 down")
    assert after["positive"].startswith("76.5% positive")
    assert after["navigations"] == 1, "the page was not reloaded"
    assert (
        "v8 is better than v7 on thumbs: +16.6 points, p = 0.012, 99 vs 101 votes (two_proportion_z)"
        in (before["verdicts"])
    )
    assert before["chartVersions"] == ["v7", "v8"]


def test_an_expired_lease_says_so_enter_takes_the_next_item_and_s_skips_it(service: ServerProcess, api: Api) -> None:
    project = new_project()
    api.define_keys(project)
    traces = [secrets.token_hex(16) for _ in range(2)]
    queue_id = api.queue(project, "short leases", [item(t, "answer") for t in traces], lease_s=10)

    result = run_scenario("lease", service, links={"alice": api.link(project, "alice", queue_id=queue_id)})

    assert result["first"] in traces
    assert "Your lease on this item expired" in result["expired"]
    assert result["next"] in traces
    assert result["afterSkip"] in [*traces, ""]
    assert result["afterSkip"] != result["next"], "a skipped item is not offered again"
    stats = api.annotation.GetQueueStats(
        annotation_pb2.GetQueueStatsRequest(project=project, queue_id=queue_id), metadata=AUTH
    )
    [alice] = stats.reviewers
    assert (alice.reviewer, alice.skipped_count, alice.done_count) == ("alice", 1, 0)
    assert [f for t in traces for f in api.stored(project, t) if f.source == feedback_pb2.SOURCE_REVIEWER] == []


def test_a_keyboard_only_pass_over_ten_items_stores_each_and_reports_its_wall_time(
    service: ServerProcess, api: Api
) -> None:
    project = new_project()
    api.define_keys(project)
    traces = [secrets.token_hex(16) for _ in range(10)]
    queue_id = api.queue(
        project, "ten items", [item(t, OUTPUTS[n % len(OUTPUTS)]) for n, t in enumerate(traces)], reviewers_per_item=1
    )
    plan = {trace: {"alice": [UP if n % 3 else DOWN, str(1 + n % 5)]} for n, trace in enumerate(traces)}

    result = run_scenario("pass", service, links={"alice": api.link(project, "alice", queue_id=queue_id)}, plan=plan)

    pass_ = result["pass"]
    assert len(pass_["seen"]) == 10
    for n, trace in enumerate(traces):
        stored = {f.key: f for f in api.stored(project, trace)}
        assert stored["quality"].score == 1 + n % 5
        assert stored["verdict"].thumb == (feedback_pb2.THUMB_UP if n % 3 else feedback_pb2.THUMB_DOWN)
        assert stored["verdict"].author == "alice"
    timing = {"items": 10, "wall_ms": pass_["ms"], "per_item_ms": round(pass_["ms"] / 10)}
    (SCREENSHOTS / "console-timing.json").write_text(json.dumps(timing) + "\n")
    print(f"keyboard-only pass over ten items: {pass_['ms']} ms ({timing['per_item_ms']} ms per item)")
    assert pass_["ms"] < 60_000


def test_the_console_page_is_served_with_a_policy_that_allows_no_inline_script_or_style(
    service: ServerProcess,
) -> None:
    with urllib.request.urlopen(f"{http_url(service)}/") as response:
        policy = response.headers["content-security-policy"]
        page = response.read().decode()
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["require-trusted-types-for"] == "'script'"
    assert "<script>" not in page, "no inline script"
    assert "style=" not in page, "no inline style"
    assert Path(JS / "console" / "index.html").read_text() == page
