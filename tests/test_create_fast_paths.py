"""The create path's shortcuts give exactly what the long way gives: the answer to a created item equals
feedback_message() of the stored record, and validation's fast path accepts nothing the full checks refuse."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedback_client.tokens import VALUE_KINDS, TokenClaims
from feedback_proto.v1 import feedback_pb2
from feedback_service.api.convert import feedback_input, feedback_message, put_created_feedback
from feedback_service.domain import validation
from feedback_service.domain.access.feedback_tokens import bind_to_token
from feedback_service.domain.errors import InvalidArgumentError
from feedback_service.domain.model import Feedback, FeedbackInput, ValueKind
from feedback_service.domain.validation import normalize_trace_id, validate_new_feedback

_EXAMPLES = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Field 99 does not exist in feedback.v1.Feedback: what a newer client might send.
_UNKNOWN_FIELD = b"\x98\x06\x07"
# Text a proto string can hold: no surrogates; no control characters, which validation refuses.
_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
_HEX = "0123456789abcdefABCDEF"


def _sent_items() -> st.SearchStrategy[feedback_pb2.Feedback]:
    """Valid request items of every shape, with output-only fields and unknown fields a caller may send."""
    value: st.SearchStrategy[dict[str, object]] = st.one_of(
        st.just({}),
        st.sampled_from([{"thumb": feedback_pb2.THUMB_UP}, {"thumb": feedback_pb2.THUMB_DOWN}]),
        st.floats(allow_nan=False, allow_infinity=False).map(lambda score: {"score": score}),
        _TEXT.filter(bool).map(lambda label: {"label": label}),
    )
    return st.builds(
        _item,
        feedback_id=st.one_of(st.just(""), st.from_regex(r"[\x21-\x7e]{1,20}", fullmatch=True)),
        trace_id=st.one_of(st.text(_HEX, min_size=32, max_size=32), _TEXT).filter(lambda t: t.strip("0")),
        span_id=st.one_of(st.just(""), st.text(_HEX, min_size=16, max_size=16), _TEXT),
        session_id=_TEXT,
        model=_TEXT,
        model_version=_TEXT,
        key=st.sampled_from(["thumbs", "helpfulness", "topic"]),
        value=value,
        comment=_TEXT,
        correction=_TEXT,
        source=st.sampled_from(list(feedback_pb2.Source.values())),
        author=_TEXT,
        metadata=st.dictionaries(_TEXT.filter(bool), _TEXT, max_size=3),
        output_only=st.booleans(),
        unknown=st.booleans(),
    ).filter(lambda item: item.WhichOneof("value") is not None or bool(item.comment or item.correction))


def _item(*, value: dict[str, object], output_only: bool, unknown: bool, **fields: object) -> feedback_pb2.Feedback:
    item = feedback_pb2.Feedback(project="from-the-request", **fields, **value)  # type: ignore[arg-type]
    if output_only:
        item.create_time.FromSeconds(1)
        item.update_time.FromSeconds(2)
        item.revision = 99
        item.created_by = item.updated_by = "someone-else"
    if unknown:
        item.MergeFromString(_UNKNOWN_FIELD)
    return item


def _stored(draft: FeedbackInput) -> Feedback:
    now = datetime(2026, 5, 17, 8, 30, 15, 123456, tzinfo=UTC)
    return validate_new_feedback(draft, now=now, actor="key-1")


def _answer(sent: feedback_pb2.Feedback, stored: Feedback) -> feedback_pb2.Feedback:
    message = feedback_pb2.Feedback()
    put_created_feedback(message, sent, stored)
    return message


def _assert_same(answer: feedback_pb2.Feedback, expected: feedback_pb2.Feedback) -> None:
    assert answer == expected
    # Byte for byte as well: unknown fields, which == may not compare, must not be echoed.
    assert answer.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)


@_EXAMPLES
@given(sent=_sent_items())
def test_a_created_item_is_answered_as_feedback_message_of_its_stored_record(sent: feedback_pb2.Feedback) -> None:
    stored = _stored(feedback_input(sent, project="acme"))
    _assert_same(_answer(sent, stored), feedback_message(stored))


@_EXAMPLES
@given(sent=_sent_items())
def test_a_created_item_sent_with_a_token_is_answered_with_the_tokens_bindings(sent: feedback_pb2.Feedback) -> None:
    for name in ("project", "model", "model_version", "author", "source"):
        sent.ClearField(name)  # the token fills them in
    claims = TokenClaims(
        project="acme",
        trace_id=normalize_trace_id(sent.trace_id),
        user="u-hash",
        keys=(sent.key,),
        value_kinds=tuple(VALUE_KINDS),
        expire_at=2**40,
        span_id=sent.span_id,
        model="bound-model",
        model_version="v9",
    )
    stored = _stored(bind_to_token(feedback_input(sent), claims))
    assert (stored.model, stored.author, int(stored.source)) == ("bound-model", "u-hash", feedback_pb2.SOURCE_USER)
    _assert_same(_answer(sent, stored), feedback_message(stored))


_TEXT_FIELDS = ("feedback_id", "trace_id", "span_id", "session_id", "model", "model_version", "comment", "correction")


@pytest.mark.parametrize("value", [{"thumb": feedback_pb2.THUMB_DOWN}, {"score": 2.5}, {"label": "billing"}])
def test_each_field_of_a_request_item_reaches_the_draft_and_the_stored_record(value: dict[str, Any]) -> None:
    """feedback_input() and validate_new_feedback() pass their fields by position: none may be swapped."""
    texts: dict[str, Any] = {name: f"{name}-1" for name in _TEXT_FIELDS}
    sent = feedback_pb2.Feedback(
        project="acme", key="k_1", source=feedback_pb2.SOURCE_AUTOMATED, author="a-1", metadata={"m": "v"}, **texts
    )
    sent.MergeFrom(feedback_pb2.Feedback(**value))
    draft = feedback_input(sent)
    kind = {"thumb": ValueKind.THUMB, "score": ValueKind.SCORE, "label": ValueKind.LABEL}[next(iter(value))]
    assert (draft.value_kind, draft.thumb, draft.score, draft.label) == (kind, sent.thumb, sent.score, sent.label)
    now = datetime(2026, 5, 17, tzinfo=UTC)
    stored = validate_new_feedback(draft, now=now, actor="key-1")
    for record in (draft, stored):
        assert {name: getattr(record, name) for name in texts} == texts
        assert (record.project, record.key, record.source, record.author) == ("acme", "k_1", 3, "a-1")
        assert record.metadata == {"m": "v"}
    stored_value = (stored.value.kind, int(stored.value.thumb), stored.value.score, stored.value.label)
    assert stored_value == (kind, sent.thumb, sent.score, sent.label)
    assert (stored.create_time, stored.update_time, stored.revision) == (now, now, 1)
    assert (stored.created_by, stored.updated_by) == ("key-1", "key-1")


def test_normalised_ids_server_ids_and_output_only_fields_are_those_of_the_stored_record() -> None:
    sent = feedback_pb2.Feedback(
        project="acme",
        trace_id="4BF92F3577B34DA6A3CE929D0E0E4736",
        span_id="00F067AA0BA902B7",
        key="thumbs",
        thumb=feedback_pb2.THUMB_DOWN,
        metadata={"app": "web", "lang": "de"},
        revision=7,
        created_by="forged",
    )
    sent.create_time.FromSeconds(5)
    sent.create_time.MergeFromString(_UNKNOWN_FIELD)  # an unknown field nested in an output-only field
    stored = _stored(feedback_input(sent))
    answer = _answer(sent, stored)
    _assert_same(answer, feedback_message(stored))
    assert (answer.trace_id, answer.span_id) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert answer.feedback_id == stored.feedback_id != ""  # generated by the server
    assert (answer.revision, answer.created_by, answer.create_time.ToDatetime(UTC)) == (1, "key-1", stored.create_time)


def test_a_stored_record_without_times_is_answered_without_times() -> None:
    sent = feedback_pb2.Feedback(project="acme", trace_id="t-1", key="thumbs", thumb=feedback_pb2.THUMB_UP)
    sent.create_time.FromSeconds(5)
    sent.update_time.FromSeconds(6)
    stored = dataclasses.replace(_stored(feedback_input(sent)), create_time=None, update_time=None)
    answer = _answer(sent, stored)
    _assert_same(answer, feedback_message(stored))
    assert not answer.HasField("create_time")
    assert not answer.HasField("update_time")


def _up_to(limit: int, char: str = "x") -> st.SearchStrategy[str]:
    return st.sampled_from(["", char, char * limit])


# Valid values of each field, the limits included.
_VALID: dict[str, st.SearchStrategy[Any]] = {
    "project": st.sampled_from(["acme", "a.b_c-d", "9lives", "p" * 64]),
    "feedback_id": st.sampled_from(["", "fb-1", "~!" * 64]),
    "trace_id": st.sampled_from(["4BF92F3577B34DA6A3CE929D0E0E4736", "t", "t" * 128, "ünï 🚀"]),
    "span_id": st.one_of(_up_to(128, "s"), st.just("00F067AA0BA902B7")),
    "session_id": _up_to(128),
    "model": _up_to(256),
    "model_version": _up_to(128),
    "key": st.sampled_from(["thumbs", "a1_", "k" * 64]),
    "value_kind": st.sampled_from(ValueKind),
    "thumb": st.sampled_from([1, 2]),
    "score": st.floats(allow_nan=False, allow_infinity=False),
    "label": st.sampled_from(["l", "l" * 256]),
    "comment": _up_to(10_000, "c"),
    "correction": _up_to(100_000),
    "source": st.integers(0, 3),
    "author": _up_to(256),
    "metadata": st.one_of(
        st.dictionaries(
            st.sampled_from(["k", "k" * 64, "ünï"]),
            st.sampled_from(["", "é" * 512, "🚀" * 256, "a" * 1024]),
            max_size=3,
        ),
        st.just({f"k{i}": "v" for i in range(64)}),
    ),
}
_ODD = st.one_of(
    st.sampled_from(["", "a\nb", "a\x7fb", "a\u200bb", "a b", "é", "🚀", "Acme", "a-b", "_a", "0" * 32]),
    st.text(max_size=6),
)
# Values just past a limit, or with the characters a rule is about.
_EDGES: dict[str, st.SearchStrategy[Any]] = {
    "project": st.one_of(_ODD, st.just("p" * 65)),
    "feedback_id": st.one_of(_ODD, st.just("f" * 129)),
    "trace_id": st.one_of(_ODD, st.just("t" * 129)),
    "span_id": st.one_of(_ODD, st.just("s" * 129)),
    "session_id": st.one_of(_ODD, st.just("s" * 129)),
    "model": st.one_of(_ODD, st.just("m" * 257)),
    "model_version": st.one_of(_ODD, st.just("v" * 129)),
    "key": st.one_of(_ODD, st.just("k" * 65)),
    "thumb": st.integers(-1, 3),
    "score": st.sampled_from([math.nan, math.inf, -math.inf]),
    "label": st.one_of(_ODD, st.just("l" * 257)),
    "comment": st.one_of(_ODD, st.just("c" * 10_001)),
    "correction": st.one_of(_ODD, st.just("c" * 100_001)),
    "source": st.integers(-1, 5),
    "author": st.one_of(_ODD, st.just("a" * 257)),
    "metadata": st.one_of(
        st.sampled_from(["é" * 513, "🚀" * 257, "a" * 1025, "\udc80" * 342]).map(lambda text: {"k": text}),
        st.one_of(_ODD, st.just("k" * 65)).map(lambda name: {name: "v"}),
        st.just({f"k{i}": "v" for i in range(65)}),
    ),
}


@st.composite
def _drafts(draw: st.DrawFn) -> FeedbackInput:
    """A valid draft (limits included) with up to two fields given an edge value instead."""
    fields = {name: draw(valid) for name, valid in _VALID.items()}
    for name in draw(st.lists(st.sampled_from(sorted(_EDGES)), max_size=2)):
        fields[name] = draw(_EDGES[name])
    return FeedbackInput(**fields)


def _full_checks(draft: FeedbackInput) -> FeedbackInput | InvalidArgumentError:
    try:
        validation._checked_value(draft, "feedback")
    except InvalidArgumentError as error:
        return error
    return draft


@settings(max_examples=3000, deadline=None)
@given(draft=_drafts())
def test_the_fast_path_accepts_nothing_the_full_checks_refuse(draft: FeedbackInput) -> None:
    fast = validation._plainly_valid_value(draft)
    full = _full_checks(draft)
    if fast is not None:
        assert full is draft, f"the fast path accepted what the full checks refuse: {full}"
        assert fast == validation._checked_value(draft, "feedback")
    if isinstance(full, InvalidArgumentError):  # refused with the full checks' own violations
        with pytest.raises(InvalidArgumentError) as refused:
            validate_new_feedback(draft, now=datetime.now(UTC))
        assert refused.value.violations == full.violations


@pytest.mark.parametrize(
    "fields",
    [
        {"value_kind": ValueKind.THUMB, "thumb": 1, "metadata": {"app_version": "3.2.1", "platform": "ios"}},
        {"value_kind": ValueKind.SCORE, "score": 4.0, "trace_id": "opaque/trace-ID", "span_id": "00F067AA0BA902B7"},
        {"value_kind": ValueKind.LABEL, "label": "billing", "comment": "ünïcødé 🚀", "feedback_id": "fb-1"},
        {"comment": "only a comment", "session_id": "chat-42", "author": "reviewer-1", "source": 2},
    ],
)
def test_common_valid_feedback_takes_the_fast_path(fields: dict[str, Any]) -> None:
    common = FeedbackInput(project="acme", trace_id="4BF92F3577B34DA6A3CE929D0E0E4736", key="thumbs")
    draft = dataclasses.replace(common, **fields)
    assert validation._plainly_valid_value(draft) is not None


def test_the_names_remembered_as_valid_are_bounded_and_never_invalid() -> None:
    for number in range(2 * validation._KNOWN_NAMES_LIMIT):
        validate_new_feedback(
            FeedbackInput(project=f"p{number}", trace_id="t", key="k", comment="c"), now=datetime.now(UTC)
        )
    assert len(validation._known_projects) <= validation._KNOWN_NAMES_LIMIT
    for _ in range(2):  # refused again: an invalid name is never remembered
        with pytest.raises(InvalidArgumentError):
            validate_new_feedback(
                FeedbackInput(project="Acme", trace_id="t", key="k", comment="c"), now=datetime.now(UTC)
            )
    assert "Acme" not in validation._known_projects
