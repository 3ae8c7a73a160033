"""The ClickHouse store, run once per transport: the embedded engine (chdb), clickhouse-connect's HTTP
client against the loopback HTTP fixture, and a real ClickHouse server when FEEDBACK_TEST_CLICKHOUSE_URL
is set (e.g. http://default:@localhost:8123). Same SQL every way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from clickhouse_connect.driver.binding import format_bind_value

from feedback_service.domain.cursor_tokens import PageCursor
from feedback_service.domain.feedback.fingerprint import create_fingerprint
from feedback_service.domain.feedback.listing import FeedbackFilter, micros_since_epoch
from feedback_service.domain.model import Feedback, FeedbackValue, Source, Thumb
from feedback_service.domain.ports import CreateStatus, NewFeedback
from feedback_service.store.engine import ClickHouseEngine, EngineConfig
from feedback_service.store.feedback_store import ClickHouseFeedbackStore
from feedback_service.store.migrations import apply_migrations
from feedback_service.store.query_params import StringArray

NASTY = "'; DROP TABLE feedback; --"


@pytest.fixture
async def store(engine: ClickHouseEngine) -> AsyncIterator[ClickHouseFeedbackStore]:
    opened = ClickHouseFeedbackStore(engine)
    opened.start()
    yield opened
    await opened.close()


def _feedback(project: str, feedback_id: str, **fields: object) -> Feedback:
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "project": project,
        "feedback_id": feedback_id,
        "trace_id": uuid.uuid4().hex,
        "key": "thumbs",
        "value": FeedbackValue.of_thumb(Thumb.UP),
        "create_time": now,
        "update_time": now,
        "revision": 1,
    }
    values.update(fields)
    return Feedback(**values)  # type: ignore[arg-type]


def _new(feedback: Feedback) -> NewFeedback:
    return NewFeedback(feedback=feedback, fingerprint=create_fingerprint(feedback))


async def _physical_rows(engine: ClickHouseEngine, project: str) -> int:
    def count(client: object) -> int:
        result = client.query(  # type: ignore[attr-defined]
            "SELECT count() FROM feedback WHERE project = {p:String}", parameters={"p": project}
        )
        return int(result.result_rows[0][0])

    return await engine.run(count)


async def test_migrations_run_twice_are_a_no_op(engine: ClickHouseEngine) -> None:
    def migrate_again(client: object) -> int:
        return len(apply_migrations(client))  # type: ignore[arg-type]

    assert await engine.run(migrate_again) == 0


async def test_create_reports_new_retried_conflicting_and_deleted_ids(store: ClickHouseFeedbackStore) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    first = _feedback(project, "a")
    outcomes = await store.create([_new(first), _new(first), _new(dataclasses.replace(first, comment="other"))])
    assert [o.status for o in outcomes] == [CreateStatus.CREATED, CreateStatus.EXISTING, CreateStatus.CONFLICT]
    again = await store.create([_new(first)])
    assert again[0].status is CreateStatus.EXISTING
    assert again[0].feedback == first
    await store.delete(project, "a", datetime.now(UTC))
    assert (await store.create([_new(first)]))[0].status is CreateStatus.DELETED


async def test_values_and_text_round_trip_verbatim(store: ClickHouseFeedbackStore) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    stored = [
        _feedback(project, "thumb", value=FeedbackValue.of_thumb(Thumb.DOWN)),
        _feedback(project, "score", value=FeedbackValue.of_score(-1e-300)),
        _feedback(
            project,
            "label",
            value=FeedbackValue.of_label(NASTY),
            trace_id=NASTY,
            comment=NASTY + " {p:String} \\N \t\n ünï 🚀",
            correction="x" * 100_000,
            source=Source.REVIEWER,
            author="\\",
            metadata={NASTY: NASTY, "": ""},
        ),
        _feedback(project, "none", value=FeedbackValue(), comment="just a comment"),
    ]
    await store.create([_new(f) for f in stored])
    for expected in stored:
        assert await store.get(project, expected.feedback_id) == expected


async def test_reads_see_the_latest_revision_before_any_merge(
    store: ClickHouseFeedbackStore, engine: ClickHouseEngine
) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    original = _feedback(project, "r")
    # Hold background merges so the read must deduplicate by itself.
    await engine.run(lambda client: client.command("SYSTEM STOP MERGES feedback"))
    await store.create([_new(original)])
    for revision in range(2, 6):
        await store.update(
            project,
            "r",
            partial(lambda current, n: dataclasses.replace(current, comment=f"r{n}", revision=n), n=revision),
        )
    assert await _physical_rows(engine, project) == 5  # not merged: every revision is still a row
    latest = await store.get(project, "r")
    assert latest is not None
    assert (latest.revision, latest.comment) == (5, "r5")
    listed = await store.list_feedback(FeedbackFilter(project=project), None, 10)
    assert listed == [latest]
    await store.delete(project, "r", datetime.now(UTC))
    assert await store.get(project, "r") is None
    assert await store.list_feedback(FeedbackFilter(project=project), None, 10) == []
    await engine.run(lambda client: client.command("SYSTEM START MERGES feedback"))


async def test_list_orders_newest_first_and_resumes_after_a_cursor(store: ClickHouseFeedbackStore) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        _feedback(project, f"f{i}", create_time=base + timedelta(seconds=i // 2), model="m" if i % 3 else "n")
        for i in range(10)
    ]
    await store.create([_new(f) for f in rows])
    everything = await store.list_feedback(FeedbackFilter(project=project), None, 100)
    expected = sorted(rows, key=lambda f: (f.create_time, f.feedback_id), reverse=True)
    assert [f.feedback_id for f in everything] == [f.feedback_id for f in expected]
    cut = everything[3]
    assert cut.create_time is not None
    cursor = PageCursor(create_time_us=micros_since_epoch(cut.create_time), feedback_id=cut.feedback_id)
    after = await store.list_feedback(FeedbackFilter(project=project), cursor, 100)
    assert after == everything[4:]
    only_n = await store.list_feedback(FeedbackFilter(project=project, model="n"), None, 100)
    assert sorted(f.feedback_id for f in only_n) == ["f0", "f3", "f6", "f9"]
    window = FeedbackFilter(
        project=project, start_time=base + timedelta(seconds=1), end_time=base + timedelta(seconds=3)
    )
    assert sorted(f.feedback_id for f in await store.list_feedback(window, None, 100)) == ["f2", "f3", "f4", "f5"]


async def test_concurrent_creates_of_one_id_store_one_row(
    store: ClickHouseFeedbackStore, engine: ClickHouseEngine
) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    same = _new(_feedback(project, "same"))
    outcomes = await asyncio.gather(*(store.create([same]) for _ in range(10)))
    statuses = sorted(o[0].status.value for o in outcomes)
    assert statuses == ["created"] + ["existing"] * 9
    assert await _physical_rows(engine, project) == 1


async def test_an_unreachable_server_is_store_unavailable(engine_dir: Path) -> None:
    from feedback_service.domain.errors import StoreUnavailableError

    closed = ClickHouseEngine(EngineConfig(data_dir=engine_dir, url="http://127.0.0.1:9", connect_timeout_s=1))
    try:
        with pytest.raises(StoreUnavailableError, match="unavailable"):
            await asyncio.to_thread(partial(closed.connect, database=None))
    finally:
        closed.close()


def test_an_outage_is_logged_without_query_parameters(engine_dir: Path) -> None:
    from clickhouse_connect.driver.exceptions import OperationalError
    from structlog.testing import capture_logs

    engine = ClickHouseEngine(EngineConfig(data_dir=engine_dir, url="http://127.0.0.1:9"))
    try:
        error = OperationalError(
            "Max retries exceeded with url: /?database=x&param_author=alice%40example.com&param_ids=%5B%27a%27%5D "
            "(Caused by NewConnectionError('refused'))"
        )
        with capture_logs() as logs:
            raised = engine._unavailable(error)
        assert "unavailable" in raised.message
        logged = str(logs)
        assert "alice" not in logged
        assert "param_" not in logged
        assert "NewConnectionError" in logged
    finally:
        engine.close()


async def test_database_calls_get_the_remaining_deadline(engine: ClickHouseEngine) -> None:
    import time as clock

    from feedback_service.domain.errors import DeadlineExceededError
    from feedback_service.store.deadline import call_deadline

    slow = "SELECT sleepEachRow(0.2) FROM numbers(25) SETTINGS max_block_size = 1"  # 5 s
    token = call_deadline.set(clock.monotonic() + 1.0)
    try:
        started = clock.monotonic()
        with pytest.raises(DeadlineExceededError):
            await engine.run(lambda client: client.query(slow).result_rows)
        assert clock.monotonic() - started < 3.5, "the query ran on past the deadline"
        call_deadline.set(clock.monotonic() - 1)
        with pytest.raises(DeadlineExceededError, match="before the database was asked"):
            await engine.run(lambda client: client.query("SELECT 1").result_rows)
    finally:
        call_deadline.reset(token)
    assert await engine.run(lambda client: client.query("SELECT 1").result_rows) == [(1,)]  # no limit left behind


# Every character clickhouse-connect escapes, quotes, and non-ASCII text.
AWKWARD = ["plain", "it's", "back\\slash", "tab\there", "new\nline", "tick`", 'quote"', "ünïcode ✓", "", NASTY]


def test_string_array_renders_exactly_what_clickhouse_connect_renders_for_the_list() -> None:
    assert format_bind_value(StringArray(AWKWARD)) == format_bind_value(AWKWARD)


async def test_string_array_parameters_reach_the_engine_verbatim(engine: ClickHouseEngine) -> None:
    def echo(client: object) -> list[str]:
        result = client.query(  # type: ignore[attr-defined]
            "SELECT arrayJoin({values:Array(String)})", parameters={"values": StringArray(AWKWARD)}
        )
        return [row[0] for row in result.result_rows]

    assert await engine.run(echo) == AWKWARD


async def test_one_flush_finds_retried_ids_and_current_votes_with_awkward_ids(
    store: ClickHouseFeedbackStore, engine: ClickHouseEngine
) -> None:
    """The single read of a flush looks up ids and the votes being replaced in one query."""
    project = f"p{uuid.uuid4().hex[:8]}"
    trace = uuid.uuid4().hex
    ids = ["it's", "back\\slash", "tick`", 'quote"', "semi;colon"]
    first_vote = _feedback(project, ids[0], trace_id=trace, source=Source.USER, author="user-1")
    plain = [_feedback(project, feedback_id) for feedback_id in ids[1:4]]
    assert {o.status for o in await store.create([_new(first_vote), *map(_new, plain)])} == {CreateStatus.CREATED}

    second_vote = _feedback(
        project, ids[4], trace_id=trace, source=Source.USER, author="user-1", value=FeedbackValue.of_thumb(Thumb.DOWN)
    )
    outcomes = await store.create([*map(_new, plain), _new(second_vote)])
    assert [o.status for o in outcomes] == [CreateStatus.EXISTING] * 3 + [CreateStatus.CREATED]
    assert await store.get(project, ids[0]) is None  # the user's earlier vote was replaced
    assert await store.get(project, ids[4]) == second_vote
    assert await _physical_rows(engine, project) == 6  # 4 creates, 1 new vote, 1 tombstone
