"""The write rules of one flush (domain/feedback/write_plan.py), without ClickHouse: idempotent creates, conflicts,
deleted ids, one vote per user (against stored votes and within one flush), updates and deletes. The same
rules end to end, through the store and the API, are in test_create.py, test_update_delete.py and
test_aggregates_property.py."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from feedback_service.domain.errors import NotFoundError
from feedback_service.domain.feedback.write_plan import Create, Delete, State, StoredState, Update, WritePlan
from feedback_service.domain.model import Feedback, FeedbackValue, Source, Thumb, ValueKind
from feedback_service.domain.ports import CreateStatus, NewFeedback

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
UP = FeedbackValue(ValueKind.THUMB, Thumb.UP)
DOWN = FeedbackValue(ValueKind.THUMB, Thumb.DOWN)


def vote(feedback_id: str, author: str = "ann", *, value: FeedbackValue = UP, at: int = 0) -> Feedback:
    moment = T0 + timedelta(seconds=at)
    return Feedback(
        "p",
        feedback_id,
        "trace",
        "thumbs",
        value,
        source=Source.USER,
        author=author,
        create_time=moment,
        update_time=moment,
        revision=1,
    )


def create(feedback: Feedback, fingerprint: str = "fp") -> Create:
    return Create(NewFeedback(feedback, fingerprint))


def stored(*items: Feedback, deleted: frozenset[str] = frozenset()) -> StoredState:
    state = StoredState()
    for item in items:
        state.states[(item.project, item.feedback_id)] = State(item, "fp", item.feedback_id in deleted)
        if item.feedback_id not in deleted and item.source is Source.USER:
            state.votes[(item.project, item.trace_id, item.key, item.author)] = item.feedback_id
    return state


def test_a_new_feedback_is_created_and_written_once() -> None:
    plan = WritePlan(StoredState())
    outcome = plan.apply(create(vote("a")))
    assert outcome.status is CreateStatus.CREATED  # type: ignore[union-attr]
    assert [(r.feedback.feedback_id, r.deleted, r.replaces) for r in plan.revisions] == [("a", False, None)]
    assert plan.projects == {"p"}


def test_a_retry_returns_the_stored_record_and_writes_nothing() -> None:
    original = vote("a")
    plan = WritePlan(stored(original))
    outcome = plan.apply(create(dataclasses.replace(original, create_time=T0 + timedelta(hours=1))))
    assert outcome.status is CreateStatus.EXISTING  # type: ignore[union-attr]
    assert outcome.feedback == original  # type: ignore[union-attr]
    assert plan.revisions == []


def test_another_payload_under_a_stored_id_is_a_conflict_and_a_deleted_id_says_so() -> None:
    plan = WritePlan(stored(vote("a"), vote("b", "bob"), deleted=frozenset({"b"})))
    assert plan.apply(create(vote("a"), fingerprint="other")).status is CreateStatus.CONFLICT  # type: ignore[union-attr]
    assert plan.apply(create(vote("b", "bob"))).status is CreateStatus.DELETED  # type: ignore[union-attr]
    assert plan.revisions == []


def test_the_same_id_twice_in_one_flush_is_stored_once() -> None:
    plan = WritePlan(StoredState())
    first, second = plan.apply(create(vote("a"))), plan.apply(create(vote("a")))
    assert (first.status, second.status) == (CreateStatus.CREATED, CreateStatus.EXISTING)  # type: ignore[union-attr]
    assert len(plan.revisions) == 1


def test_a_users_new_vote_replaces_the_stored_one() -> None:
    old = vote("old", value=UP)
    plan = WritePlan(stored(old))
    plan.apply(create(vote("new", value=DOWN, at=5)))
    tombstone, created = plan.revisions
    assert (tombstone.feedback.feedback_id, tombstone.deleted, tombstone.feedback.revision) == ("old", True, 2)
    assert tombstone.replaces == old  # the aggregates take the old vote back
    assert (created.feedback.feedback_id, created.deleted) == ("new", False)
    assert plan.votes == {("p", "trace", "thumbs", "ann"): "new"}


def test_votes_within_one_flush_leave_only_the_last() -> None:
    plan = WritePlan(StoredState())
    for n in range(3):
        plan.apply(create(vote(f"v{n}", at=n)))
    live = {r.feedback.feedback_id for r in plan.revisions if not r.deleted}
    deleted = [r.feedback.feedback_id for r in plan.revisions if r.deleted]
    assert (live - set(deleted), deleted) == ({"v2"}, ["v0", "v1"])
    assert plan.votes == {("p", "trace", "thumbs", "ann"): "v2"}


def test_other_authors_keys_and_sources_do_not_replace_a_vote() -> None:
    plan = WritePlan(stored(vote("ann-vote")))
    plan.apply(create(vote("bob-vote", "bob")))
    plan.apply(create(dataclasses.replace(vote("other-key"), key="quality")))
    plan.apply(create(dataclasses.replace(vote("review"), source=Source.REVIEWER)))
    plan.apply(create(vote("anonymous", "")))
    assert not any(r.deleted for r in plan.revisions)


def test_an_update_writes_the_next_revision_and_a_missing_id_is_not_found() -> None:
    current = vote("a")
    plan = WritePlan(stored(current))
    updated = plan.apply(Update("p", "a", lambda f: dataclasses.replace(f, comment="why", revision=f.revision + 1)))
    assert isinstance(updated, Feedback)
    assert (updated.comment, updated.revision) == ("why", 2)
    assert plan.revisions[0].replaces == current
    assert isinstance(plan.apply(Update("p", "missing", lambda f: f)), NotFoundError)


def test_a_deleted_vote_leaves_its_key_without_a_current_vote_and_cannot_be_deleted_twice() -> None:
    plan = WritePlan(stored(vote("a")))
    assert plan.apply(Delete("p", "a", T0 + timedelta(minutes=1), actor="key-1")) is None
    assert plan.votes == {("p", "trace", "thumbs", "ann"): None}
    (tombstone,) = plan.revisions
    assert (tombstone.deleted, tombstone.feedback.updated_by) == (True, "key-1")
    assert isinstance(plan.apply(Delete("p", "a", T0, actor="")), NotFoundError)
    # The next vote of the same user then replaces nothing.
    plan.apply(create(vote("b", at=90)))
    assert [r.feedback.feedback_id for r in plan.revisions] == ["a", "b"]
