"""End-user feedback tokens: minted by a backend, sent by a browser, checked for signature, expiry, binding."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from feedback_client.tokens import hash_user_id, mint_feedback_token, secret_id
from feedback_proto.v1 import feedback_pb2, feedback_service_pb2_grpc
from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_service.server import FeedbackServer
from tests.support.auth import OLD_TOKEN_SECRET, TOKEN_SECRET, authorized_channel
from tests.test_auth import create_key


async def mint(server: FeedbackServer, project: str, **fields: Any) -> pb.MintFeedbackTokenResponse:
    key = await create_key(server, project, "ingest")
    values: dict[str, Any] = {"trace_id": "trace-1", "keys": ["thumbs"], "user_id": "alice", **fields}
    async with authorized_channel(f"127.0.0.1:{server.port}", key) as channel:
        stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
        response: pb.MintFeedbackTokenResponse = await stub.MintFeedbackToken(pb.MintFeedbackTokenRequest(**values))
        return response


async def create_with_token(
    server: FeedbackServer, token: str, feedback: feedback_pb2.Feedback, *, as_field: bool = False
) -> feedback_pb2.Feedback:
    """CreateFeedback as a browser would: the token is the only credential."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
        if as_field:
            request = pb.CreateFeedbackRequest(feedback=feedback, feedback_token=token)
            response = await stub.CreateFeedback(request, timeout=10)
        else:
            metadata = (("authorization", f"Bearer {token}"),)
            response = await stub.CreateFeedback(
                pb.CreateFeedbackRequest(feedback=feedback), metadata=metadata, timeout=10
            )
        return response.feedback  # type: ignore[no-any-return]


async def _refused(server: FeedbackServer, token: str, feedback: feedback_pb2.Feedback) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create_with_token(server, token, feedback)
    return caught.value


THUMB_UP = feedback_pb2.Feedback(key="thumbs", thumb=feedback_pb2.THUMB_UP)


async def test_a_minted_token_creates_end_user_feedback_bound_to_its_call(server: FeedbackServer, project: str) -> None:
    minted = await mint(server, project, model="bot", model_version="v3", span_id="00f067aa0ba902b7")
    expires_in = minted.expire_time.seconds - time.time()
    assert 24 * 3600 - 60 < expires_in <= 24 * 3600  # default lifetime
    stored = await create_with_token(server, minted.token, THUMB_UP)
    assert (stored.project, stored.trace_id, stored.span_id) == (project, "trace-1", "00f067aa0ba902b7")
    assert (stored.model, stored.model_version) == ("bot", "v3")
    assert stored.source == feedback_pb2.SOURCE_USER
    assert stored.author == hash_user_id(project, "alice")
    assert "alice" not in minted.token
    payload = json.loads(base64.urlsafe_b64decode(minted.token.split(".")[1] + "=="))
    assert payload["kid"] == secret_id(TOKEN_SECRET), "the first secret signs during a rotation"


async def test_the_token_may_come_as_a_request_field(server: FeedbackServer, project: str) -> None:
    minted = await mint(server, project)
    stored = await create_with_token(server, minted.token, THUMB_UP, as_field=True)
    assert stored.author == hash_user_id(project, "alice")


async def test_a_users_new_vote_replaces_the_old_one(server: FeedbackServer, project: str, client: Any) -> None:
    minted = await mint(server, project, model="bot", model_version="v1")
    await create_with_token(server, minted.token, THUMB_UP)
    down = feedback_pb2.Feedback(key="thumbs", thumb=feedback_pb2.THUMB_DOWN)
    latest = await create_with_token(server, minted.token, down)
    listed = [f async for f in client.iter_feedback(pb.ListFeedbackRequest(project=project))]
    assert [f.feedback_id for f in listed] == [latest.feedback_id]


async def test_offline_minted_tokens_are_accepted_with_either_rotation_secret(
    server: FeedbackServer, project: str
) -> None:
    for secret in (TOKEN_SECRET, OLD_TOKEN_SECRET):
        token = mint_feedback_token(
            secret, project=project, trace_id="t-off", user_id=f"u-{secret[:4]}", keys=["thumbs"]
        )
        stored = await create_with_token(server, token, THUMB_UP)
        assert stored.trace_id == "t-off"


async def test_tampered_expired_and_foreign_tokens_are_refused(server: FeedbackServer, project: str) -> None:
    token = (await mint(server, project)).token
    head, payload, signature = token.split(".")
    tampered = f"{head}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}"
    for bad, words in (
        (tampered, "token"),
        (f"{head}.{payload}.{signature[::-1]}", "signature is invalid"),
        (mint_feedback_token("x" * 40, project=project, trace_id="trace-1", user_id="a", keys=["thumbs"]), "secret"),
        (
            mint_feedback_token(
                TOKEN_SECRET,
                project=project,
                trace_id="trace-1",
                user_id="a",
                keys=["thumbs"],
                ttl_s=60,
                now=time.time() - 120,
            ),
            "expired",
        ),
        ("fbt1.not-a-token", "malformed"),
    ):
        error = await _refused(server, bad, THUMB_UP)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.details()
        assert words in (error.details() or ""), error.details()


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"project": "someone-else"}, "cannot act on project"),
        ({"trace_id": "other-trace"}, "feedback.trace_id"),
        ({"model": "other-model"}, "feedback.model"),
        ({"key": "helpfulness"}, "feedback.key"),
        ({"score": 1.0}, "does not allow a score"),
        ({"comment": "hi"}, "does not allow a comment"),
        ({"source": feedback_pb2.SOURCE_REVIEWER}, "SOURCE_USER"),
        ({"author": "somebody"}, "feedback.author"),
    ],
)
async def test_feedback_outside_the_binding_is_permission_denied(
    server: FeedbackServer, project: str, fields: dict[str, Any], words: str
) -> None:
    token = (await mint(server, project, model="bot", value_kinds=[pb.VALUE_KIND_THUMB])).token
    feedback = feedback_pb2.Feedback(key="thumbs", thumb=feedback_pb2.THUMB_UP)
    for name, value in fields.items():
        if name == "score":
            feedback.score = value
        else:
            setattr(feedback, name, value)
    error = await _refused(server, token, feedback)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert words in (error.details() or "")


async def test_a_token_only_creates_feedback(server: FeedbackServer, project: str) -> None:
    token = (await mint(server, project)).token
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListFeedback(pb.ListFeedbackRequest(), metadata=(("authorization", f"Bearer {token}"),))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"ttl": Duration(seconds=8 * 24 * 3600)}, "ttl"),
        ({"ttl": Duration(seconds=0)}, "ttl"),
        ({"keys": []}, "keys"),
        ({"user_id": ""}, "user_id"),
        ({"trace_id": ""}, "trace_id"),
        ({"value_kinds": [9]}, "value_kinds"),
    ],
)
async def test_bad_mint_requests_are_invalid_argument(
    server: FeedbackServer, project: str, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mint(server, project, **fields)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (caught.value.details() or "")


async def test_a_ttl_out_of_any_datetime_range_is_invalid_argument(server: FeedbackServer, project: str) -> None:
    # Found by the fuzzer: a huge negative duration once overflowed into INTERNAL.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mint(server, project, ttl=Duration(seconds=-86399999913601))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ttl" in (caught.value.details() or "")


async def test_hex_trace_and_span_bindings_ignore_case(server: FeedbackServer, project: str) -> None:
    # OpenTelemetry hex ids are case-insensitive and stored in lower case: a token bound to an upper-case
    # id (minted by the RPC or offline by any client) accepts the id in either case.
    trace, span = "4BF92F3577B34DA6A3CE929D0E0E4736", "3D7956834B2AB90C"
    minted = (await mint(server, project, span_id=span)).token
    offline = mint_feedback_token(
        TOKEN_SECRET, project=project, trace_id=trace, span_id=span, user_id="bob", keys=["thumbs"]
    )
    # (token, trace id sent, trace id stored); an empty id takes the token's.
    cases = [(minted, "", "trace-1"), (offline, "", trace.lower()), (offline, trace, trace.lower())]
    cases.append((offline, trace.lower(), trace.lower()))
    for token, trace_id, stored_trace_id in cases:
        for span_id in (span.lower(), span, ""):
            feedback = feedback_pb2.Feedback(
                key="thumbs", thumb=feedback_pb2.THUMB_UP, trace_id=trace_id, span_id=span_id
            )
            stored = await create_with_token(server, token, feedback)
            assert (stored.trace_id, stored.span_id) == (stored_trace_id, span.lower())
    other_span = feedback_pb2.Feedback(key="thumbs", thumb=feedback_pb2.THUMB_UP, span_id="3d7956834b2ab90d")
    error = await _refused(server, minted, other_span)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "feedback.span_id" in (error.details() or "")
