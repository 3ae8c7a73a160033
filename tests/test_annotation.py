"""Annotation queues and reviewer agreement over real gRPC and the real engine."""

# The stubs come from fixtures and are untyped here: grpc.aio stubs are typed only in .pyi files.
# mypy: disable-error-code="no-untyped-def"
from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from feedback_client import FeedbackError
from feedback_proto.v1 import annotation_pb2 as pb
from feedback_proto.v1 import annotation_pb2_grpc, feedback_keys_pb2_grpc, feedback_pb2
from feedback_proto.v1 import feedback_keys_pb2 as keys_pb
from feedback_proto.v1 import feedback_service_pb2 as feedback_pb
from feedback_service.domain.annotation.operations import AnnotationOperations
from feedback_service.domain.annotation.queues import Queue, QueueItem
from feedback_service.domain.errors import LeaseExpiredError, QueueEmptyError
from feedback_service.domain.feedback.operations import FeedbackOperations
from feedback_service.domain.keys.registry import KeySchemaRegistry
from feedback_service.domain.model import FeedbackInput, ValueKind
from feedback_service.server import FeedbackServer
from feedback_service.store.annotation_store import ClickHouseAnnotationStore
from feedback_service.store.feedback_key_store import ClickHouseKeySchemaStore
from tests.helpers import field_violations


@pytest.fixture
def annotation(channel: grpc.aio.Channel) -> annotation_pb2_grpc.AnnotationServiceStub:
    return annotation_pb2_grpc.AnnotationServiceStub(channel)


async def make_queue(annotation, project: str, *, keys=("correctness",), per_item=1, reviewers=()) -> str:
    queue = pb.Queue(
        project=project,
        name="support-bot review",
        keys=list(keys),
        instructions="Is the answer correct?",
        reviewers=list(reviewers),
        reviewers_per_item=per_item,
    )
    created = await annotation.CreateQueue(pb.CreateQueueRequest(queue=queue))
    return str(created.queue.queue_id)


async def add_traces(annotation, project: str, queue_id: str, count: int) -> list[str]:
    traces = [f"trace-{n:03d}" for n in range(count)]
    items = [pb.QueueItem(trace_id=t, model="bot", model_version="v1") for t in traces]
    await annotation.AddQueueItems(pb.AddQueueItemsRequest(project=project, queue_id=queue_id, items=items))
    return traces


def reason(error: grpc.aio.AioRpcError) -> str:
    return FeedbackError.from_rpc_error(error).reason


async def claim(annotation, project: str, queue_id: str, reviewer: str) -> pb.ClaimNextItemResponse | None:
    try:
        response: pb.ClaimNextItemResponse = await annotation.ClaimNextItem(
            pb.ClaimNextItemRequest(project=project, queue_id=queue_id, reviewer=reviewer)
        )
    except grpc.aio.AioRpcError as error:
        if reason(error) != "QUEUE_EMPTY":
            raise
        assert error.code() == grpc.StatusCode.NOT_FOUND
        return None
    return response


def verdict(key: str = "correctness", **value: object) -> feedback_pb2.Feedback:
    return feedback_pb2.Feedback(key=key, **value)  # type: ignore[arg-type]


async def test_a_queue_is_filled_from_thumbs_down_feedback_without_duplicates(annotation, stub, project: str) -> None:
    for n, (version, thumb) in enumerate(
        [("v1", "THUMB_DOWN"), ("v1", "THUMB_UP"), ("v2", "THUMB_DOWN"), ("v1", "THUMB_DOWN")]
    ):
        item = feedback_pb2.Feedback(
            project=project, trace_id=f"t{n}", key="thumbs", model="bot", model_version=version,
            thumb=feedback_pb2.Thumb.Value(thumb),
        )  # fmt: skip
        await stub.CreateFeedback(feedback_pb.CreateFeedbackRequest(feedback=item))
    queue_id = await make_queue(annotation, project)
    selector = pb.FeedbackSelector(model="bot", model_version="v1", thumb=feedback_pb2.THUMB_DOWN)
    first = await annotation.AddQueueItems(
        pb.AddQueueItemsRequest(project=project, queue_id=queue_id, from_feedback=selector)
    )
    again = await annotation.AddQueueItems(
        pb.AddQueueItemsRequest(
            project=project, queue_id=queue_id, from_feedback=selector, items=[pb.QueueItem(trace_id="extra")]
        )
    )
    assert (first.added_count, first.already_queued_count) == (2, 0)
    assert (again.added_count, again.already_queued_count) == (1, 2)
    stats = await annotation.GetQueueStats(pb.GetQueueStatsRequest(project=project, queue_id=queue_id))
    assert (stats.total_count, stats.pending_count) == (3, 3)
    listed = await annotation.ListQueues(pb.ListQueuesRequest(project=project))
    assert [q.queue_id for q in listed.queues] == [queue_id]
    assert listed.queues[0].lease.seconds == 600


async def test_hex_trace_and_span_ids_queue_one_item_whatever_their_case(annotation, project: str) -> None:
    trace, span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    queue_id = await make_queue(annotation, project)
    items = [pb.QueueItem(trace_id=trace.upper(), span_id=span.upper()), pb.QueueItem(trace_id=trace, span_id=span)]
    first = await annotation.AddQueueItems(pb.AddQueueItemsRequest(project=project, queue_id=queue_id, items=items))
    again = await annotation.AddQueueItems(
        pb.AddQueueItemsRequest(project=project, queue_id=queue_id, items=[pb.QueueItem(trace_id=trace, span_id=span)])
    )
    assert (first.added_count, first.already_queued_count) == (1, 1)
    assert (again.added_count, again.already_queued_count) == (0, 1)
    claimed = await claim(annotation, project, queue_id, "alice")
    assert claimed is not None
    assert (claimed.item.trace_id, claimed.item.span_id) == (trace, span), "stored like feedback ids: lower case"


async def test_claim_then_submit_stores_reviewer_feedback_and_completes_the_item(
    annotation, stub, project: str
) -> None:
    queue_id = await make_queue(annotation, project, keys=("correctness", "notes"))
    await add_traces(annotation, project, queue_id, 1)
    claimed = await claim(annotation, project, queue_id, "alice")
    assert claimed is not None
    assert (claimed.item.trace_id, list(claimed.queue.keys)) == ("trace-000", ["correctness", "notes"])
    request = pb.SubmitAnnotationRequest(
        project=project,
        queue_id=queue_id,
        claim_id=claimed.claim_id,
        feedback=[
            verdict(thumb=feedback_pb2.THUMB_DOWN, correction="30 days"),
            verdict("notes", comment="outdated policy"),
        ],
    )
    stored = await annotation.SubmitAnnotation(request)
    assert [(f.source, f.author, f.trace_id, f.model_version) for f in stored.feedback] == [
        (feedback_pb2.SOURCE_REVIEWER, "alice", "trace-000", "v1")
    ] * 2
    retried = await annotation.SubmitAnnotation(request)  # a lost response: the retry stores nothing new
    assert list(retried.feedback) == list(stored.feedback)
    listed = await stub.ListFeedback(feedback_pb.ListFeedbackRequest(project=project))
    assert len(listed.feedback) == 2
    stats = await annotation.GetQueueStats(pb.GetQueueStatsRequest(project=project, queue_id=queue_id))
    assert (stats.done_count, stats.pending_count, stats.in_progress_count) == (1, 0, 0)
    assert [(r.reviewer, r.done_count) for r in stats.reviewers] == [("alice", 1)]
    assert await claim(annotation, project, queue_id, "bob") is None


async def test_a_bad_submission_stores_nothing_and_keeps_the_claim(annotation, channel, stub, project: str) -> None:
    keys = feedback_keys_pb2_grpc.FeedbackKeyServiceStub(channel)
    schema = keys_pb.FeedbackKey(
        project=project, name="helpfulness", kind=keys_pb.FEEDBACK_KEY_KIND_SCORE, score_min=1, score_max=5
    )
    await keys.CreateFeedbackKey(keys_pb.CreateFeedbackKeyRequest(feedback_key=schema))
    queue_id = await make_queue(annotation, project, keys=("helpfulness", "notes"))
    await add_traces(annotation, project, queue_id, 1)
    claimed = await claim(annotation, project, queue_id, "alice")
    assert claimed is not None
    bad = [verdict("notes", comment="fine"), verdict("helpfulness", score=9), verdict("other", score=1)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await annotation.SubmitAnnotation(
            pb.SubmitAnnotationRequest(project=project, queue_id=queue_id, claim_id=claimed.claim_id, feedback=bad)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "feedback[2].key" in field_violations(caught.value)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await annotation.SubmitAnnotation(
            pb.SubmitAnnotationRequest(project=project, queue_id=queue_id, claim_id=claimed.claim_id, feedback=bad[:2])
        )
    assert list(field_violations(caught.value)) == ["feedback[1].score"]
    assert not (await stub.ListFeedback(feedback_pb.ListFeedbackRequest(project=project))).feedback
    good = [verdict("notes", comment="fine"), verdict("helpfulness", score=4)]
    stored = await annotation.SubmitAnnotation(
        pb.SubmitAnnotationRequest(project=project, queue_id=queue_id, claim_id=claimed.claim_id, feedback=good)
    )
    assert len(stored.feedback) == 2


async def test_skip_passes_the_item_on_and_reviewer_lists_are_enforced(annotation, project: str) -> None:
    queue_id = await make_queue(annotation, project, reviewers=("alice", "bob"))
    await add_traces(annotation, project, queue_id, 1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await claim(annotation, project, queue_id, "mallory")
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    claimed = await claim(annotation, project, queue_id, "alice")
    assert claimed is not None
    assert await claim(annotation, project, queue_id, "bob") is None  # held by alice
    await annotation.SkipItem(pb.SkipItemRequest(project=project, queue_id=queue_id, claim_id=claimed.claim_id))
    assert await claim(annotation, project, queue_id, "alice") is None  # never offered again to the skipper
    taken = await claim(annotation, project, queue_id, "bob")
    assert taken is not None
    assert taken.item.item_id == claimed.item.item_id
    with pytest.raises(grpc.aio.AioRpcError) as used:
        await annotation.SkipItem(pb.SkipItemRequest(project=project, queue_id=queue_id, claim_id=claimed.claim_id))
    assert (used.value.code(), reason(used.value)) == (grpc.StatusCode.FAILED_PRECONDITION, "LEASE_EXPIRED")


@pytest.mark.parametrize("per_item", [1, 2])
async def test_concurrent_claimers_never_share_an_item_beyond_its_reviewer_count(
    annotation, project: str, per_item: int
) -> None:
    queue_id = await make_queue(annotation, project, per_item=per_item)
    await add_traces(annotation, project, queue_id, 30)
    handed: list[tuple[str, str]] = []

    async def reviewer(name: str) -> None:
        while (claimed := await claim(annotation, project, queue_id, name)) is not None:
            handed.append((claimed.item.item_id, name))

    await asyncio.gather(*(reviewer(f"r{n}") for n in range(12)))
    per_item_count = Counter(item for item, _ in handed)
    assert len(per_item_count) == 30  # none lost
    assert set(per_item_count.values()) == {per_item}  # none handed out beyond its count
    assert len(set(handed)) == len(handed)  # no reviewer got an item twice
    stats = await annotation.GetQueueStats(pb.GetQueueStatsRequest(project=project, queue_id=queue_id))
    assert (stats.in_progress_count, stats.pending_count) == (30, 0)
    assert sum(r.in_progress_count for r in stats.reviewers) == 30 * per_item


async def test_an_expired_lease_returns_the_item_and_refuses_the_late_submission(
    server: FeedbackServer, project: str
) -> None:
    # The real store and engine with a clock the test moves: leases last at least 10 s in real time.
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    schemas = KeySchemaRegistry(ClickHouseKeySchemaStore(server.engine))
    operations = AnnotationOperations(
        ClickHouseAnnotationStore(server.engine),
        FeedbackOperations(server.store, schemas=schemas),
        schemas,
        clock=lambda: now[0],
    )
    queue = await operations.create_queue(
        Queue(project=project, queue_id="", name="q", keys=("correctness",), lease=timedelta(minutes=10))
    )
    await operations.add_items(project, queue.queue_id, [QueueItem(trace_id="t1")], None)
    first = await operations.claim_next(project, queue.queue_id, "alice")
    with pytest.raises(QueueEmptyError):
        await operations.claim_next(project, queue.queue_id, "bob")
    now[0] += timedelta(minutes=10, seconds=1)
    second = await operations.claim_next(project, queue.queue_id, "bob")
    assert second.item.item_id == first.item.item_id
    answer = FeedbackInput(key="correctness", value_kind=ValueKind.THUMB, thumb=1)
    with pytest.raises(LeaseExpiredError):
        await operations.submit(project, queue.queue_id, first.claim.claim_id, [answer], actor="k")
    stored = await operations.submit(project, queue.queue_id, second.claim.claim_id, [answer], actor="k")
    assert [f.author for f in stored] == ["bob"]


async def test_agreement_is_cohens_kappa_for_two_reviewers(annotation, project: str) -> None:
    queue_id = await make_queue(annotation, project, per_item=2)
    await add_traces(annotation, project, queue_id, 4)
    # By item: alice up, down, up, down; bob up, down, down, down. p_o = 3/4; alice 2 up / 2 down,
    # bob 1 up / 3 down: p_e = (2/4)(1/4) + (2/4)(3/4) = 1/2; kappa = (3/4 - 1/2) / (1 - 1/2) = 0.5.
    votes = {
        "alice": {"trace-000": 1, "trace-001": 2, "trace-002": 1, "trace-003": 2},
        "bob": {"trace-000": 1, "trace-001": 2, "trace-002": 2, "trace-003": 2},
    }
    for reviewer, by_trace in votes.items():
        while (claimed := await claim(annotation, project, queue_id, reviewer)) is not None:
            thumb = by_trace[claimed.item.trace_id]
            await annotation.SubmitAnnotation(
                pb.SubmitAnnotationRequest(
                    project=project, queue_id=queue_id, claim_id=claimed.claim_id, feedback=[verdict(thumb=thumb)]
                )
            )
    response = await annotation.GetAgreement(pb.GetAgreementRequest(project=project, queue_id=queue_id))
    (result,) = response.agreements
    assert (result.key, result.method) == ("correctness", pb.AGREEMENT_METHOD_COHEN_KAPPA)
    assert result.value == pytest.approx(0.5)
    assert (result.item_count, result.reviewer_count, result.rating_count) == (4, 2, 8)


async def test_agreement_is_krippendorffs_interval_alpha_for_scores_of_three_reviewers(
    stub, annotation, project: str
) -> None:
    # Reviewer feedback given outside a queue counts when agreement is asked for by key. Three
    # reviewers score two items: (1, 2, 3) and (4, 4, 5). Pairable values n = 6; within-unit squared
    # differences: unit 1: (1,2)=1,(1,3)=4,(2,3)=1 -> 2*6/(3-1) = 6; unit 2: 0,1,1 -> 2*2/2 = 2; D_o = 8/6.
    # All values 1,2,3,4,4,5: mean 19/6; sum of squared pair differences over all ordered pairs
    # = 2*n*sum((v-mean)^2) = 2*6*(65/6) = 130; D_e = 130/(6*5) = 4.3333; alpha = 1 - (8/6)/4.3333 = 0.69231.
    scores = {"a": (1, 4), "b": (2, 4), "c": (3, 5)}
    for author, (first, second) in scores.items():
        for trace, value in (("u1", first), ("u2", second)):
            item = feedback_pb2.Feedback(
                project=project,
                trace_id=trace,
                key="quality",
                score=value,
                source=feedback_pb2.SOURCE_REVIEWER,
                author=author,
            )
            await stub.CreateFeedback(feedback_pb.CreateFeedbackRequest(feedback=item))
    response = await annotation.GetAgreement(pb.GetAgreementRequest(project=project, key="quality"))
    (result,) = response.agreements
    assert result.method == pb.AGREEMENT_METHOD_KRIPPENDORFF_ALPHA_INTERVAL
    assert result.value == pytest.approx(1 - (8 / 6) / (130 / 30))
    assert (result.item_count, result.reviewer_count, result.rating_count) == (2, 3, 6)


async def test_agreement_without_overlapping_reviews_has_no_value(annotation, project: str) -> None:
    queue_id = await make_queue(annotation, project)
    response = await annotation.GetAgreement(pb.GetAgreementRequest(project=project, queue_id=queue_id))
    (result,) = response.agreements
    assert (result.method, result.HasField("value"), result.item_count) == (pb.AGREEMENT_METHOD_UNSPECIFIED, False, 0)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await annotation.GetAgreement(pb.GetAgreementRequest(project=project))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_bad_queues_and_unknown_queues_are_named(annotation, project: str) -> None:
    bad = pb.Queue(project=project, name="", keys=["Bad"], reviewers_per_item=11, lease=Duration(seconds=1))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await annotation.CreateQueue(pb.CreateQueueRequest(queue=bad))
    assert set(field_violations(caught.value)) == {
        "queue.name", "queue.keys[0]", "queue.reviewers_per_item", "queue.lease",
    }  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await claim(annotation, project, uuid.uuid4().hex, "alice")
    assert (missing.value.code(), reason(missing.value)) == (grpc.StatusCode.NOT_FOUND, "QUEUE_NOT_FOUND")
