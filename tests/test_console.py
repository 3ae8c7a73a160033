"""The reviewer console's server half: item content and trace links, blind item context, and console links
(signed, expiring credentials bound to a reviewer and maybe a queue) over real gRPC and HTTP channels."""

# The stubs come from fixtures and are untyped here: grpc.aio stubs are typed only in .pyi files.
# mypy: disable-error-code="no-untyped-def"
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2

from feedback_client import ConsoleLink, FeedbackClient, FeedbackError, SyncFeedbackClient
from feedback_client.tokens import mint_feedback_token
from feedback_proto.v1 import aggregates_pb2 as agg
from feedback_proto.v1 import annotation_pb2 as pb
from feedback_proto.v1 import annotation_pb2_grpc, feedback_keys_pb2_grpc, feedback_pb2, feedback_service_pb2_grpc
from feedback_proto.v1 import feedback_keys_pb2 as fk
from feedback_proto.v1 import feedback_service_pb2 as fpb
from feedback_service.config import ConfigError, Settings, load_settings
from feedback_service.domain.access.feedback_tokens import ConsoleLinkClaims, sign_console_link
from feedback_service.domain.annotation.queues import MAX_CONTENT_BYTES
from feedback_service.server import FeedbackServer
from feedback_service.store.annotation_store import ClickHouseAnnotationStore
from feedback_service.store.engine import ClickHouseEngine, EngineConfig
from feedback_service.store.migrations import apply_migrations, load_migrations
from tests.helpers import field_violations
from tests.support.auth import ADMIN_KEY, ALLOWED_ORIGIN, TOKEN_SECRET, authorized_channel
from tests.test_auth import create_key

ANNOTATION = "/feedback.v1.AnnotationService"
TEMPLATE = "https://tracing.example.com/trace/{trace_id}?span={span_id}"


@pytest.fixture
def annotation(channel: grpc.aio.Channel) -> annotation_pb2_grpc.AnnotationServiceStub:
    return annotation_pb2_grpc.AnnotationServiceStub(channel)


@pytest.fixture
async def http(http_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=http_url, timeout=30) as client:
        yield client


async def make_queue(annotation, project: str, *, per_item: int = 1, template: str = "", reviewers=()) -> str:
    queue = pb.Queue(
        project=project,
        name="console review",
        keys=["correctness"],
        reviewers_per_item=per_item,
        trace_url_template=template,
        reviewers=list(reviewers),
    )
    return str((await annotation.CreateQueue(pb.CreateQueueRequest(queue=queue))).queue.queue_id)


async def add(annotation, project: str, queue_id: str, *items: pb.QueueItem) -> pb.AddQueueItemsResponse:
    request = pb.AddQueueItemsRequest(project=project, queue_id=queue_id, items=list(items))
    response: pb.AddQueueItemsResponse = await annotation.AddQueueItems(request)
    return response


async def link_for(annotation, project: str, reviewer: str, **fields: Any) -> pb.CreateConsoleLinkResponse:
    request = pb.CreateConsoleLinkRequest(project=project, reviewer=reviewer, **fields)
    response: pb.CreateConsoleLinkResponse = await annotation.CreateConsoleLink(request)
    return response


class Console:
    """The stubs a console holding ``token`` uses: the link is the only credential, as in a browser."""

    def __init__(self, server: FeedbackServer, token: str) -> None:
        self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._stubs = (
            annotation_pb2_grpc.AnnotationServiceStub(self._channel),
            feedback_service_pb2_grpc.FeedbackServiceStub(self._channel),
            feedback_keys_pb2_grpc.FeedbackKeyServiceStub(self._channel),
        )

    async def __aenter__(self) -> Console:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._channel.close()

    async def call(self, rpc: str, request: Any) -> Any:
        method = next(getattr(stub, rpc) for stub in self._stubs if hasattr(stub, rpc))
        if rpc in ("StreamAggregates", "ExportFeedback"):
            return [m async for m in method(request, metadata=self._metadata, timeout=10)]
        return await method(request, metadata=self._metadata, timeout=10)

    async def refused(self, rpc: str, request: Any) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await self.call(rpc, request)
        return caught.value


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = status_pb2.Status()
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            assert isinstance(value, bytes)
            status.ParseFromString(value)
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    raise AssertionError(f"no ErrorInfo in {error}")


def assert_outside_binding(error: grpc.aio.AioRpcError, field: str) -> None:
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
    assert field in (error.details() or ""), error.details()
    info = error_info(error)
    assert (info.reason, info.metadata["field"]) == ("OUTSIDE_CREDENTIAL_BINDING", field)


# ---- content and trace links --------------------------------------------------------------------------------


async def test_item_content_and_the_trace_link_come_back_with_the_claim(annotation, project: str) -> None:
    queue_id = await make_queue(annotation, project, template=TEMPLATE)
    content = pb.ItemContent(
        input="How long is the refund window?",
        output="**30 days** from delivery.",
        context={"retrieved_document": "Refunds: 30 days.", "system_prompt": "Be brief. ü ✓"},
        format=pb.CONTENT_FORMAT_MARKDOWN,
    )
    trace = uuid.uuid4().hex
    await add(annotation, project, queue_id, pb.QueueItem(trace_id=trace, span_id="00f067aa0ba902b7", content=content))
    await add(annotation, project, queue_id, pb.QueueItem(trace_id="no content/here"))

    first = await annotation.ClaimNextItem(pb.ClaimNextItemRequest(project=project, queue_id=queue_id, reviewer="a"))
    assert first.item.content == content
    assert first.item.trace_url == f"https://tracing.example.com/trace/{trace}?span=00f067aa0ba902b7"
    assert first.queue.trace_url_template == TEMPLATE
    second = await annotation.ClaimNextItem(pb.ClaimNextItemRequest(project=project, queue_id=queue_id, reviewer="a"))
    assert not second.item.HasField("content"), "an item added without content has none"
    assert second.item.trace_url == "https://tracing.example.com/trace/no%20content%2Fhere?span=", "ids are escaped"
    listed = await annotation.ListQueues(pb.ListQueuesRequest(project=project))
    assert [q.trace_url_template for q in listed.queues] == [TEMPLATE]


async def test_unspecified_format_is_plain_text_and_re_adding_keeps_the_first_content(annotation, project) -> None:
    queue_id = await make_queue(annotation, project)
    first = pb.ItemContent(input="q", output="a")
    again = await add(annotation, project, queue_id, pb.QueueItem(trace_id="t", content=first))
    assert (again.added_count, again.already_queued_count) == (1, 0)
    repeated = await add(annotation, project, queue_id, pb.QueueItem(trace_id="t", content=pb.ItemContent(output="b")))
    assert (repeated.added_count, repeated.already_queued_count) == (0, 1)
    claimed = await annotation.ClaimNextItem(pb.ClaimNextItemRequest(project=project, queue_id=queue_id, reviewer="a"))
    assert (claimed.item.content.output, claimed.item.content.format) == ("a", pb.CONTENT_FORMAT_PLAIN_TEXT)
    assert claimed.item.trace_url == "", "no template, no link"


async def test_content_up_to_256_kib_is_stored_and_beyond_it_is_refused_naming_the_item(annotation, project) -> None:
    queue_id = await make_queue(annotation, project)
    # Bytes, not characters: 'é' is two UTF-8 bytes.
    exactly = pb.ItemContent(
        input="é" * 1024,
        output="x" * (MAX_CONTENT_BYTES - 2048 - 3),
        context={"doc": ""},
        format=pb.CONTENT_FORMAT_PLAIN_TEXT,
    )
    await add(annotation, project, queue_id, pb.QueueItem(trace_id="fits", content=exactly))
    claimed = await annotation.ClaimNextItem(pb.ClaimNextItemRequest(project=project, queue_id=queue_id, reviewer="a"))
    assert claimed.item.content == exactly

    too_big = pb.ItemContent(output="x", context={"doc": "y" * MAX_CONTENT_BYTES})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await add(
            annotation, project, queue_id, pb.QueueItem(trace_id="ok"), pb.QueueItem(trace_id="big", content=too_big)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "262144 bytes" in field_violations(caught.value)["items[1].content"]
    stats = await annotation.GetQueueStats(pb.GetQueueStatsRequest(project=project, queue_id=queue_id))
    assert stats.total_count == 1, "a refused request adds nothing"


async def test_bad_formats_json_and_context_names_are_field_violations(annotation, project: str) -> None:
    queue_id = await make_queue(annotation, project)
    unknown = pb.QueueItem(trace_id="a", content=pb.ItemContent(output="x", format=9))  # type: ignore[arg-type]
    items = [
        pb.QueueItem(
            trace_id="b", content=pb.ItemContent(input='{"q": 1}', output="{not json", format=pb.CONTENT_FORMAT_JSON)
        ),
        pb.QueueItem(trace_id="c", content=pb.ItemContent(output="x", context={"": "unnamed"})),
        pb.QueueItem(
            trace_id="d", content=pb.ItemContent(input="[1, 2]", output='"ok"', format=pb.CONTENT_FORMAT_JSON)
        ),
        # What browsers' JSON.parse refuses, and nesting too deep to parse, are not JSON either.
        pb.QueueItem(
            trace_id="e", content=pb.ItemContent(input="NaN", output="[" * 50_000, format=pb.CONTENT_FORMAT_JSON)
        ),
    ]
    for sent, expected in (
        ([items[2], unknown], {"items[1].content.format"}),
        (
            items,
            {
                "items[0].content.output",
                "items[1].content.context",
                "items[3].content.input",
                "items[3].content.output",
            },
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await add(annotation, project, queue_id, *sent)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        violations = field_violations(caught.value)
        assert set(violations) == expected
    assert "valid JSON" in violations["items[0].content.output"]
    assert (await add(annotation, project, queue_id, items[2])).added_count == 1, "JSON texts that parse are fine"


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("https://tracing.example.com/trace/", "{trace_id}"),
        ("ftp://tracing.example.com/{trace_id}", "http:// or https://"),
        ("javascript:alert({trace_id})", "http:// or https://"),
        ("https:///{trace_id}", "http:// or https://"),
        ("https://tracing.example.com/a b/{trace_id}", "spaces"),
        ("https://t.example.com/" + "x" * 2048 + "{trace_id}", "2048"),
    ],
)
async def test_a_bad_trace_url_template_is_named(annotation, project: str, template: str, words: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await make_queue(annotation, project, template=template)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in field_violations(caught.value)["queue.trace_url_template"]


async def test_queues_and_items_stored_before_migration_0011_carry_over(engine_dir: Path) -> None:
    database = f"content_migration_{uuid.uuid4().hex[:8]}"
    engine = ClickHouseEngine(EngineConfig(data_dir=engine_dir, database=database))
    try:
        migrations = load_migrations()
        (version,) = [m.version for m in migrations if m.name == "0011_queue_content.sql"]
        await asyncio.to_thread(engine.create_database)
        await engine.run(lambda client: apply_migrations(client, migrations[: version - 1]))
        await engine.run(
            lambda client: client.command(
                "INSERT INTO annotation_queues VALUES ('p', 'q1', 'old', ['correctness'], '', [], 1, 600000, now64(6))"
            )
        )
        await engine.run(
            lambda client: client.command(
                "INSERT INTO queue_items VALUES ('p', 'q1', 'i1', 't1', '', 'm', 'v', now64(6))"
            )
        )
        await engine.run(apply_migrations)
        store = ClickHouseAnnotationStore(engine)
        queue = await store.get_queue("p", "q1")
        assert queue is not None
        assert (queue.name, queue.trace_url_template) == ("old", "")
        item = await store.item("p", "q1", "i1")
        assert item is not None
        assert (item.trace_id, item.content) == ("t1", None)
    finally:
        await engine.run(lambda client: client.command(f"DROP DATABASE IF EXISTS `{database}`"))
        engine.close()


# ---- blind item context -------------------------------------------------------------------------------------


async def test_the_claim_holder_sees_end_users_feedback_but_never_other_reviewers(
    server: FeedbackServer, annotation, stub, project: str
) -> None:
    trace = uuid.uuid4().hex
    end_users = [
        feedback_pb2.Feedback(key="thumbs", thumb=feedback_pb2.THUMB_DOWN, comment="wrong window", author="u1"),
        feedback_pb2.Feedback(key="thumbs", correction="It is 30 days.", author="u2", span_id="00f067aa0ba902b7"),
    ]
    for item in end_users:
        item.MergeFrom(feedback_pb2.Feedback(project=project, trace_id=trace, source=feedback_pb2.SOURCE_USER))
        await stub.CreateFeedback(fpb.CreateFeedbackRequest(feedback=item))
    automated = feedback_pb2.Feedback(
        project=project, trace_id=trace, key="toxicity", score=0.1, source=feedback_pb2.SOURCE_AUTOMATED
    )
    await stub.CreateFeedback(fpb.CreateFeedbackRequest(feedback=automated))
    other_trace = feedback_pb2.Feedback(
        project=project, trace_id="elsewhere", key="thumbs", thumb=feedback_pb2.THUMB_UP
    )
    await stub.CreateFeedback(fpb.CreateFeedbackRequest(feedback=other_trace))
    queue_id = await make_queue(annotation, project, per_item=2)
    await add(annotation, project, queue_id, pb.QueueItem(trace_id=trace, content=pb.ItemContent(output="60 days")))

    # Bob annotates first (reviewer feedback on the same trace), through his own console link.
    bob = (await link_for(annotation, project, "bob")).token
    alice = (await link_for(annotation, project, "alice")).token
    async with Console(server, bob) as console:
        bobs = await console.call("ClaimNextItem", pb.ClaimNextItemRequest(queue_id=queue_id))
        verdict = feedback_pb2.Feedback(key="correctness", thumb=feedback_pb2.THUMB_DOWN, comment="bob's secret")
        await console.call(
            "SubmitAnnotation",
            pb.SubmitAnnotationRequest(queue_id=queue_id, claim_id=bobs.claim_id, feedback=[verdict]),
        )
    async with Console(server, alice) as console:
        claimed = await console.call("ClaimNextItem", pb.ClaimNextItemRequest(queue_id=queue_id))
        seen = await console.call(
            "GetItemContext", pb.GetItemContextRequest(queue_id=queue_id, claim_id=claimed.claim_id)
        )
        assert seen.item.content.output == "60 days"
        assert seen.lease_expire_time == claimed.lease_expire_time
        assert {f.source for f in seen.user_feedback} == {feedback_pb2.SOURCE_USER}
        assert sorted(f.author for f in seen.user_feedback) == ["u1", "u2"], "every span of the trace, users only"
        assert "bob's secret" not in str(seen), "never another reviewer's annotation"
    # Bob's link cannot read Alice's claim, nor act on it.
    async with Console(server, bob) as console:
        error = await console.refused(
            "GetItemContext", pb.GetItemContextRequest(queue_id=queue_id, claim_id=claimed.claim_id)
        )
        assert_outside_binding(error, "claim_id")
        error = await console.refused("SkipItem", pb.SkipItemRequest(queue_id=queue_id, claim_id=claimed.claim_id))
        assert_outside_binding(error, "claim_id")
        # Nor read raw feedback at all: a reviewer link has no read scope.
        error = await console.refused("ListFeedback", fpb.ListFeedbackRequest())
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    # A used claim shows nothing any more.
    async with Console(server, alice) as console:
        await console.call("SkipItem", pb.SkipItemRequest(queue_id=queue_id, claim_id=claimed.claim_id))
        error = await console.refused(
            "GetItemContext", pb.GetItemContextRequest(queue_id=queue_id, claim_id=claimed.claim_id)
        )
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(error).reason == "LEASE_EXPIRED"


# ---- console links ------------------------------------------------------------------------------------------


async def test_a_link_is_signed_expiring_and_points_at_the_console(server: FeedbackServer, annotation, project) -> None:
    before = time.time()
    minted = await link_for(annotation, project, "alice")
    assert minted.token.startswith("fbc1.")
    assert minted.url == f"{server.public_url}/#link={minted.token}"
    assert minted.url.startswith(f"http://127.0.0.1:{server.http_port}/#link=fbc1.")
    assert 7 * 86400 - 60 < minted.expire_time.seconds - before <= 7 * 86400 + 1, "7 days by default"
    payload = json.loads(base64.urlsafe_b64decode(minted.token.split(".")[1] + "=="))
    assert {k: payload[k] for k in ("prj", "rev", "q", "ro")} == {"prj": project, "rev": "alice", "q": "", "ro": False}
    short = await link_for(annotation, project, "alice", ttl=Duration(seconds=3600))
    assert short.expire_time.seconds - before <= 3601


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"reviewer": ""}, "reviewer"),
        ({"reviewer": "r" * 257}, "reviewer"),
        ({"reviewer": "alice", "ttl": Duration(seconds=31 * 86400)}, "ttl"),
        ({"reviewer": "alice", "ttl": Duration(seconds=0)}, "ttl"),
        ({"reviewer": "alice", "ttl": Duration(seconds=-5)}, "ttl"),
        ({"reviewer": "alice", "ttl": Duration(seconds=10**15)}, "ttl"),
    ],
)
async def test_bad_link_requests_are_invalid_argument(annotation, project: str, fields: dict[str, Any], field) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await annotation.CreateConsoleLink(pb.CreateConsoleLinkRequest(project=project, **fields))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)


async def test_links_name_existing_queues_and_allowed_reviewers(annotation, project: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await link_for(annotation, project, "alice", queue_id="no-such-queue")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    queue_id = await make_queue(annotation, project, reviewers=["alice"])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await link_for(annotation, project, "mallory", queue_id=queue_id)
    assert "reviewer" in field_violations(caught.value)
    await link_for(annotation, project, "mallory", queue_id=queue_id, read=True)  # reading is not reviewing


async def test_links_are_minted_with_annotate_or_admin_keys_only(server: FeedbackServer, project: str) -> None:
    for scopes, allowed in ((("annotate",), True), (("admin",), True), (("read", "ingest"), False)):
        key = await create_key(server, project, *scopes)
        async with authorized_channel(f"127.0.0.1:{server.port}", key) as channel:
            stub = annotation_pb2_grpc.AnnotationServiceStub(channel)
            request = pb.CreateConsoleLinkRequest(reviewer="alice")
            if allowed:
                assert (await stub.CreateConsoleLink(request)).token.startswith("fbc1.")
            else:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.CreateConsoleLink(request)
                assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_reviewer_link_claims_and_submits_as_its_reviewer_only(server, annotation, stub, project) -> None:
    queue_id = await make_queue(annotation, project, per_item=2)
    await add(annotation, project, queue_id, pb.QueueItem(trace_id="t1"), pb.QueueItem(trace_id="t2"))
    token = (await link_for(annotation, project, "alice")).token
    async with Console(server, token) as console:
        error = await console.refused("ClaimNextItem", pb.ClaimNextItemRequest(queue_id=queue_id, reviewer="bob"))
        assert_outside_binding(error, "reviewer")
        error = await console.refused(
            "ClaimNextItem", pb.ClaimNextItemRequest(project=project + "-b", queue_id=queue_id)
        )
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, "the project comes from the link"
        claimed = await console.call("ClaimNextItem", pb.ClaimNextItemRequest(queue_id=queue_id))
        same = await console.call("ClaimNextItem", pb.ClaimNextItemRequest(queue_id=queue_id, reviewer="alice"))
        assert claimed.item.trace_id != same.item.trace_id
        forged = feedback_pb2.Feedback(key="correctness", thumb=feedback_pb2.THUMB_UP, author="bob")
        error = await console.refused(
            "SubmitAnnotation",
            pb.SubmitAnnotationRequest(queue_id=queue_id, claim_id=claimed.claim_id, feedback=[forged]),
        )
        assert_outside_binding(error, "feedback[0].author")
        verdict = feedback_pb2.Feedback(key="correctness", thumb=feedback_pb2.THUMB_UP)
        stored = await console.call(
            "SubmitAnnotation",
            pb.SubmitAnnotationRequest(queue_id=queue_id, claim_id=claimed.claim_id, feedback=[verdict]),
        )
        assert [(f.author, f.source, f.created_by) for f in stored.feedback] == [
            ("alice", feedback_pb2.SOURCE_REVIEWER, "link:alice")
        ]
        stats = await console.call("GetQueueStats", pb.GetQueueStatsRequest(queue_id=queue_id))
        assert [(r.reviewer, r.done_count, r.in_progress_count) for r in stats.reviewers] == [("alice", 1, 1)]
        # Bob's claim (through an API key) is not Alice's to submit.
        bobs = await annotation.ClaimNextItem(
            pb.ClaimNextItemRequest(project=project, queue_id=queue_id, reviewer="bob")
        )
        error = await console.refused(
            "SubmitAnnotation",
            pb.SubmitAnnotationRequest(queue_id=queue_id, claim_id=bobs.claim_id, feedback=[verdict]),
        )
        assert_outside_binding(error, "claim_id")
        # A reviewer link reviews; it manages nothing and reads no raw feedback or dashboards' streams.
        for rpc, request in (
            ("CreateQueue", pb.CreateQueueRequest(queue=pb.Queue(name="x", keys=["k"]))),
            ("AddQueueItems", pb.AddQueueItemsRequest(queue_id=queue_id, items=[pb.QueueItem(trace_id="t9")])),
            ("CreateConsoleLink", pb.CreateConsoleLinkRequest(reviewer="alice")),
            ("CreateFeedback", fpb.CreateFeedbackRequest(feedback=verdict)),
            ("ListFeedback", fpb.ListFeedbackRequest()),
            ("StreamAggregates", fpb.StreamAggregatesRequest(filter=agg.AggregateFilter())),
            (
                "CreateFeedbackKey",
                fk.CreateFeedbackKeyRequest(feedback_key=fk.FeedbackKey(name="k", kind=fk.FEEDBACK_KEY_KIND_THUMBS)),
            ),
        ):
            error = await console.refused(rpc, request)
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED, (rpc, error.details())
        await console.call("ListFeedbackKeys", fk.ListFeedbackKeysRequest())
        await console.call("GetAgreement", pb.GetAgreementRequest(queue_id=queue_id))


async def test_a_link_bound_to_a_queue_cannot_reach_another(server: FeedbackServer, annotation, project: str) -> None:
    queue_a = await make_queue(annotation, project)
    queue_b = await make_queue(annotation, project)
    for queue_id in (queue_a, queue_b):
        await add(annotation, project, queue_id, pb.QueueItem(trace_id=f"t-{queue_id}"))
    bobs = await annotation.ClaimNextItem(pb.ClaimNextItemRequest(project=project, queue_id=queue_b, reviewer="alice"))
    token = (await link_for(annotation, project, "alice", queue_id=queue_a)).token
    async with Console(server, token) as console:
        for rpc, request in (
            ("ClaimNextItem", pb.ClaimNextItemRequest(queue_id=queue_b)),
            ("GetQueueStats", pb.GetQueueStatsRequest(queue_id=queue_b)),
            ("GetAgreement", pb.GetAgreementRequest(queue_id=queue_b)),
            ("SkipItem", pb.SkipItemRequest(queue_id=queue_b, claim_id=bobs.claim_id)),
            ("GetItemContext", pb.GetItemContextRequest(queue_id=queue_b, claim_id=bobs.claim_id)),
        ):
            assert_outside_binding(await console.refused(rpc, request), "queue_id")
        listed = await console.call("ListQueues", pb.ListQueuesRequest())
        assert [q.queue_id for q in listed.queues] == [queue_a], "a bound link lists its queue only"
        claimed = await console.call("ClaimNextItem", pb.ClaimNextItemRequest())  # the queue comes from the link
        assert claimed.item.trace_id == f"t-{queue_a}"
        stats = await console.call("GetQueueStats", pb.GetQueueStatsRequest())
        assert stats.in_progress_count == 1
        agreement = await console.call("GetAgreement", pb.GetAgreementRequest(key="correctness"))
        assert [a.key for a in agreement.agreements] == ["correctness"]


async def test_a_read_link_reads_dashboards_and_writes_nothing(server: FeedbackServer, annotation, project) -> None:
    queue_id = await make_queue(annotation, project)
    await add(annotation, project, queue_id, pb.QueueItem(trace_id="t1"))
    token = (await link_for(annotation, project, "viewer", read=True)).token
    async with Console(server, token) as console:
        await console.call("ListQueues", pb.ListQueuesRequest())
        await console.call("GetQueueStats", pb.GetQueueStatsRequest(queue_id=queue_id))
        await console.call("GetAgreement", pb.GetAgreementRequest(queue_id=queue_id))
        await console.call("ListFeedbackKeys", fk.ListFeedbackKeysRequest())
        await console.call("CompareVersions", fpb.CompareVersionsRequest(model="m", version_a="a", version_b="b"))
        snapshot = await console.call("StreamAggregates", fpb.StreamAggregatesRequest(filter=agg.AggregateFilter()))
        assert snapshot[-1].HasField("snapshot_complete")
        verdict = feedback_pb2.Feedback(key="correctness", thumb=feedback_pb2.THUMB_UP, trace_id="t1")
        for rpc, request in (
            ("ClaimNextItem", pb.ClaimNextItemRequest(queue_id=queue_id)),
            ("SubmitAnnotation", pb.SubmitAnnotationRequest(queue_id=queue_id, claim_id="c", feedback=[verdict])),
            ("SkipItem", pb.SkipItemRequest(queue_id=queue_id, claim_id="c")),
            ("GetItemContext", pb.GetItemContextRequest(queue_id=queue_id, claim_id="c")),
            ("CreateQueue", pb.CreateQueueRequest(queue=pb.Queue(name="x", keys=["k"]))),
            ("AddQueueItems", pb.AddQueueItemsRequest(queue_id=queue_id, items=[pb.QueueItem(trace_id="t2")])),
            ("CreateConsoleLink", pb.CreateConsoleLinkRequest(reviewer="viewer")),
            ("CreateFeedback", fpb.CreateFeedbackRequest(feedback=verdict)),
            ("UpdateFeedback", fpb.UpdateFeedbackRequest(feedback=verdict)),
            ("ListFeedback", fpb.ListFeedbackRequest()),
            ("ExportFeedback", fpb.ExportFeedbackRequest(filter=agg.AggregateFilter())),
        ):
            error = await console.refused(rpc, request)
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED, (rpc, error.details())
            assert "read-only console link" in (error.details() or "")
    stats = await annotation.GetQueueStats(pb.GetQueueStatsRequest(project=project, queue_id=queue_id))
    assert (stats.pending_count, len(stats.reviewers)) == (1, 0), "nothing was claimed"


def _link(project: str, *, secret: str = TOKEN_SECRET, expire_at: int | None = None, read: bool = False) -> str:
    claims = ConsoleLinkClaims(
        project=project, reviewer="alice", expire_at=expire_at or int(time.time()) + 600, read=read
    )
    return sign_console_link(secret, claims)


async def test_expired_tampered_and_foreign_links_are_unauthenticated(server: FeedbackServer, project: str) -> None:
    good = _link(project)
    head, payload, signature = good.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged["ro"], forged["rev"] = False, "bob"
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    for bad, words in (
        (_link(project, expire_at=int(time.time()) - 1), "expired"),
        (f"{head}.{forged_payload}.{signature}", "signature is invalid"),
        (f"{head}.{payload}.{signature[::-1]}", "signature is invalid"),
        (_link(project, secret="s" * 40), "rotated out"),
        ("fbc1.not-a-link", "malformed console link"),
        (f"{head}.{payload}", "malformed console link"),
    ):
        async with Console(server, bad) as console:
            error = await console.refused("ListQueues", pb.ListQueuesRequest())
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, (bad, error.details())
        assert words in (error.details() or ""), error.details()
    async with Console(server, good) as console:
        await console.call("ListQueues", pb.ListQueuesRequest())


async def test_a_link_is_no_feedback_token_and_a_feedback_token_is_no_link(server: FeedbackServer, project) -> None:
    link = _link(project)
    thumb = feedback_pb2.Feedback(key="thumbs", thumb=feedback_pb2.THUMB_UP, trace_id="t1")
    async with Console(server, link) as console:
        error = await console.refused("CreateFeedback", fpb.CreateFeedbackRequest(feedback=thumb))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    # As the request's feedback_token field, with no other credential: still a console link, still refused.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateFeedback(fpb.CreateFeedbackRequest(feedback=thumb, feedback_token=link), timeout=10)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    token = mint_feedback_token(TOKEN_SECRET, project=project, trace_id="t1", user_id="u", keys=["thumbs"])
    async with Console(server, token) as console:
        for rpc, request in (
            ("ListQueues", pb.ListQueuesRequest()),
            ("ClaimNextItem", pb.ClaimNextItemRequest(queue_id="q")),
        ):
            error = await console.refused(rpc, request)
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "feedback token only allows CreateFeedback" in (error.details() or "")
    # Same secret, other prefix: the signature covers the prefix, so neither passes for the other.
    _, payload, signature = token.split(".")
    async with Console(server, f"fbc1.{payload}.{signature}") as console:
        assert (await console.refused("ListQueues", pb.ListQueuesRequest())).code() == grpc.StatusCode.UNAUTHENTICATED
    _, payload, signature = link.split(".")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
        metadata = (("authorization", f"Bearer fbt1.{payload}.{signature}"),)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateFeedback(fpb.CreateFeedbackRequest(feedback=thumb), metadata=metadata, timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_over_http_a_link_works_on_the_services_own_pages_only(
    http: httpx.AsyncClient, http_url: str, annotation, project: str
) -> None:
    queue_id = await make_queue(annotation, project)
    await add(annotation, project, queue_id, pb.QueueItem(trace_id="t1", content=pb.ItemContent(output="hi")))
    link = (await link_for(annotation, project, "alice", queue_id=queue_id)).token
    bearer = {"authorization": f"Bearer {link}"}
    # A page of a listed origin (CORS lets it call, with end-user tokens) and of any other origin: refused.
    for origin, words in (
        (ALLOWED_ORIGIN, "console links work on the service's own pages only"),
        ("https://evil.example.net", "may not call this service"),
    ):
        refused = await http.post(f"{ANNOTATION}/ClaimNextItem", json={}, headers={**bearer, "origin": origin})
        assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied"), origin
        assert words in refused.json()["message"]
    # The service's own page (the console) and callers without an Origin (not a page) may.
    claimed = await http.post(f"{ANNOTATION}/ClaimNextItem", json={}, headers={**bearer, "origin": http_url})
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["item"]["content"] == {"output": "hi", "format": "CONTENT_FORMAT_PLAIN_TEXT"}
    context = await http.post(
        f"{ANNOTATION}/GetItemContext",
        json={"claimId": claimed.json()["claimId"]},
        headers={**bearer, "origin": http_url},
    )
    assert context.status_code == 200, context.text
    other = await http.post(f"{ANNOTATION}/ClaimNextItem", json={"reviewer": "bob"}, headers=bearer)
    assert (other.status_code, other.json()["code"]) == (403, "permission_denied")
    assert "reviewer" in other.json()["message"]


async def _serving(engine_dir: Path, secrets: tuple[str, ...]) -> FeedbackServer:
    running = FeedbackServer(
        Settings(
            listen="127.0.0.1:0",
            http_listen=None,
            data_dir=engine_dir,
            clickhouse_database="link_rotation_tests",
            admin_key=ADMIN_KEY,
            token_secrets=secrets,
            public_url="https://feedback.example.com/",
        )
    )
    await running.start()
    return running


async def test_rotating_the_token_secrets_revokes_console_links(engine_dir: Path) -> None:
    new_secret = "n" * 40
    old_link = _link("demo")  # signed with TOKEN_SECRET, the secret of the session server
    rotating = await _serving(engine_dir, (new_secret, TOKEN_SECRET))
    try:
        async with Console(rotating, old_link) as console:
            await console.call("ListQueues", pb.ListQueuesRequest())  # the old secret still verifies
        async with authorized_channel(f"127.0.0.1:{rotating.port}", ADMIN_KEY) as channel:
            stub = annotation_pb2_grpc.AnnotationServiceStub(channel)
            minted = await stub.CreateConsoleLink(pb.CreateConsoleLinkRequest(project="demo", reviewer="alice"))
        assert minted.url == f"https://feedback.example.com/#link={minted.token}", "FEEDBACK_PUBLIC_URL"
    finally:
        await rotating.stop(grace_s=1)
    rotated = await _serving(engine_dir, (new_secret,))
    try:
        async with Console(rotated, old_link) as console:
            error = await console.refused("ListQueues", pb.ListQueuesRequest())
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "rotated out" in (error.details() or "")
        async with Console(rotated, minted.token) as console:
            await console.call("ListQueues", pb.ListQueuesRequest())  # signed by the new secret
    finally:
        await rotated.stop(grace_s=1)


def test_the_public_url_setting_parses_strictly() -> None:
    def parse(value: str) -> Settings:
        return load_settings(argparse.Namespace(), {"FEEDBACK_PUBLIC_URL": value})

    assert parse("https://feedback.example.com/").public_url == "https://feedback.example.com"
    assert parse("http://10.0.0.5:8080/review").public_url == "http://10.0.0.5:8080/review"
    assert parse("").public_url is None
    for bad in ("feedback.example.com", "ftp://x", "https://x/#frag", "https://x/?q=1"):
        with pytest.raises(ConfigError, match="FEEDBACK_PUBLIC_URL"):
            parse(bad)


# ---- the Python SDK -----------------------------------------------------------------------------------------


async def test_the_sdk_mints_links_sync_and_async(server: FeedbackServer, project: str) -> None:
    async with FeedbackClient(f"127.0.0.1:{server.port}", api_key=ADMIN_KEY, project=project) as client:
        queue = await client.create_queue(pb.Queue(name="sdk", keys=["correctness"]))
        link = await client.create_console_link(reviewer="alice", queue=queue.queue_id, ttl=timedelta(hours=2))
        assert isinstance(link, ConsoleLink)
        assert link.url.endswith(f"/#link={link.token}")
        assert timedelta(hours=2) - timedelta(minutes=1) < link.expire_time - datetime.now(UTC) <= timedelta(hours=2)
        with pytest.raises(FeedbackError) as caught:
            await client.create_console_link(reviewer="alice", ttl=timedelta(days=31))
        assert caught.value.reason == "INVALID_REQUEST"
    async with Console(server, link.token) as console:
        listed = await console.call("ListQueues", pb.ListQueuesRequest())
        assert [q.queue_id for q in listed.queues] == [queue.queue_id]

    def mint_sync() -> ConsoleLink:
        with SyncFeedbackClient(f"127.0.0.1:{server.port}", api_key=ADMIN_KEY) as client:
            return client.create_console_link(project=project, reviewer="viewer", read=True)

    read_link = await asyncio.to_thread(mint_sync)
    payload = json.loads(base64.urlsafe_b64decode(read_link.token.split(".")[1] + "=="))
    assert (payload["rev"], payload["ro"]) == ("viewer", True)
    assert read_link.expire_time - datetime.now(UTC) > timedelta(days=6, hours=23)
