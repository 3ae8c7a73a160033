"""API keys and tenancy: every RPC refuses a missing or bad key, a missing scope and another project."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from feedback_proto.v1 import aggregates_pb2 as agg
from feedback_proto.v1 import annotation_pb2 as ann
from feedback_proto.v1 import (
    annotation_pb2_grpc,
    api_keys_pb2_grpc,
    feedback_keys_pb2_grpc,
    feedback_pb2,
    feedback_service_pb2_grpc,
)
from feedback_proto.v1 import api_keys_pb2 as keys_pb
from feedback_proto.v1 import feedback_keys_pb2 as fk
from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_service.config import Settings
from feedback_service.server import FeedbackServer
from tests.helpers import thumbs_up
from tests.support.auth import ADMIN_KEY, authorized_channel

SCOPES = {
    "ingest": keys_pb.SCOPE_INGEST,
    "annotate": keys_pb.SCOPE_ANNOTATE,
    "read": keys_pb.SCOPE_READ,
    "admin": keys_pb.SCOPE_ADMIN,
}


async def create_key(server: FeedbackServer, project: str, *scopes: str) -> str:
    async with authorized_channel(f"127.0.0.1:{server.port}", ADMIN_KEY) as channel:
        stub = api_keys_pb2_grpc.ApiKeyServiceStub(channel)
        request = keys_pb.CreateApiKeyRequest(project=project, name="test", scopes=[SCOPES[s] for s in scopes])
        response: keys_pb.CreateApiKeyResponse = await stub.CreateApiKey(request)
        return response.key


async def _drain(call: Any) -> None:
    async for _ in call:
        pass


# Every RPC with a request that names ``project`` and otherwise valid input; value: the scope it needs.
def rpc_calls(project: str) -> dict[str, tuple[str, Callable[[Any], Awaitable[Any]]]]:
    feedback = thumbs_up(project, feedback_id="fixed-id")
    return {
        "CreateFeedback": ("ingest", lambda s: s.CreateFeedback(pb.CreateFeedbackRequest(feedback=feedback))),
        "BatchCreateFeedback": (
            "ingest",
            lambda s: s.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=[feedback])),
        ),
        "GetFeedback": (
            "read",
            lambda s: s.GetFeedback(pb.GetFeedbackRequest(project=project, feedback_id="fixed-id")),
        ),
        "ListFeedback": ("read", lambda s: s.ListFeedback(pb.ListFeedbackRequest(project=project))),
        "UpdateFeedback": (
            "annotate",
            lambda s: s.UpdateFeedback(
                pb.UpdateFeedbackRequest(
                    feedback=feedback_pb2.Feedback(project=project, feedback_id="fixed-id", comment="c")
                )
            ),
        ),
        "DeleteFeedback": (
            "annotate",
            lambda s: s.DeleteFeedback(pb.DeleteFeedbackRequest(project=project, feedback_id="nope")),
        ),
        "StreamAggregates": (
            "read",
            lambda s: _drain(
                s.StreamAggregates(pb.StreamAggregatesRequest(filter=agg.AggregateFilter(project=project)))
            ),
        ),
        "ExportFeedback": (
            "read",
            lambda s: _drain(s.ExportFeedback(pb.ExportFeedbackRequest(filter=agg.AggregateFilter(project=project)))),
        ),
        "CompareVersions": (
            "read",
            lambda s: s.CompareVersions(
                pb.CompareVersionsRequest(project=project, model="m", version_a="a", version_b="b")
            ),
        ),
        "MintFeedbackToken": (
            "ingest",
            lambda s: s.MintFeedbackToken(
                pb.MintFeedbackTokenRequest(project=project, trace_id="t", keys=["thumbs"], user_id="u")
            ),
        ),
        **review_calls(project),
    }


def review_calls(project: str) -> dict[str, tuple[str, Callable[[Any], Awaitable[Any]]]]:
    """FeedbackKeyService and AnnotationService; reads are also open to annotate keys."""
    key = fk.FeedbackKey(project=project, name="k", kind=fk.FEEDBACK_KEY_KIND_THUMBS)
    queue = ann.Queue(project=project, name="q", keys=["k"])
    return {
        "CreateFeedbackKey": ("annotate", lambda s: s.CreateFeedbackKey(fk.CreateFeedbackKeyRequest(feedback_key=key))),
        "GetFeedbackKey": ("read", lambda s: s.GetFeedbackKey(fk.GetFeedbackKeyRequest(project=project, name="k"))),
        "ListFeedbackKeys": ("read", lambda s: s.ListFeedbackKeys(fk.ListFeedbackKeysRequest(project=project))),
        "UpdateFeedbackKey": ("annotate", lambda s: s.UpdateFeedbackKey(fk.UpdateFeedbackKeyRequest(feedback_key=key))),
        "ArchiveFeedbackKey": (
            "annotate",
            lambda s: s.ArchiveFeedbackKey(fk.ArchiveFeedbackKeyRequest(project=project, name="k")),
        ),
        "CreateQueue": ("annotate", lambda s: s.CreateQueue(ann.CreateQueueRequest(queue=queue))),
        "AddQueueItems": (
            "annotate",
            lambda s: s.AddQueueItems(ann.AddQueueItemsRequest(project=project, queue_id="q", items=[])),
        ),
        "ListQueues": ("read", lambda s: s.ListQueues(ann.ListQueuesRequest(project=project))),
        "GetQueueStats": ("read", lambda s: s.GetQueueStats(ann.GetQueueStatsRequest(project=project, queue_id="q"))),
        "ClaimNextItem": (
            "annotate",
            lambda s: s.ClaimNextItem(ann.ClaimNextItemRequest(project=project, queue_id="q", reviewer="r")),
        ),
        "SubmitAnnotation": (
            "annotate",
            lambda s: s.SubmitAnnotation(ann.SubmitAnnotationRequest(project=project, queue_id="q", claim_id="c")),
        ),
        "SkipItem": (
            "annotate",
            lambda s: s.SkipItem(ann.SkipItemRequest(project=project, queue_id="q", claim_id="c")),
        ),
        "GetAgreement": ("read", lambda s: s.GetAgreement(ann.GetAgreementRequest(project=project, key="k"))),
        "GetItemContext": (
            "annotate",
            lambda s: s.GetItemContext(ann.GetItemContextRequest(project=project, queue_id="q", claim_id="c")),
        ),
        "CreateConsoleLink": (
            "admin",  # or annotate: see ALSO_ANNOTATE
            lambda s: s.CreateConsoleLink(ann.CreateConsoleLinkRequest(project=project, reviewer="r")),
        ),
    }


# RPCs a key with the annotate scope may call besides those of their own scope.
ALSO_ANNOTATE = {
    "CreateFeedback", "BatchCreateFeedback", "GetFeedbackKey", "ListFeedbackKeys", "ListQueues", "GetQueueStats",
    "GetAgreement", "CreateConsoleLink",
}  # fmt: skip


RPCS = list(rpc_calls("x"))


def _stub_with(server: FeedbackServer, metadata: tuple[tuple[str, str], ...]) -> tuple[grpc.aio.Channel, Any]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")

    class WithMetadata:
        """The stubs of every service on the channel, sending ``metadata`` with each call."""

        def __init__(self, *stubs: Any) -> None:
            self._stubs = stubs

        def __getattr__(self, name: str) -> Any:
            method = next(getattr(stub, name) for stub in self._stubs if hasattr(stub, name))
            return lambda request: method(request, metadata=metadata, timeout=10)

    stubs = (
        feedback_service_pb2_grpc.FeedbackServiceStub(channel),
        feedback_keys_pb2_grpc.FeedbackKeyServiceStub(channel),
        annotation_pb2_grpc.AnnotationServiceStub(channel),
    )
    return channel, WithMetadata(*stubs)


async def _code(
    server: FeedbackServer, metadata: tuple[tuple[str, str], ...], rpc: str, project: str
) -> grpc.StatusCode:
    channel, stub = _stub_with(server, metadata)
    async with channel:
        try:
            await rpc_calls(project)[rpc][1](stub)
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("rpc", RPCS)
@pytest.mark.parametrize(
    "credential",
    ["", "Bearer", "Bearer not-a-key", "Basic abc", "Bearer fbk_0123456789abcdef_" + "A" * 43],
    ids=["missing", "empty", "malformed", "other-scheme", "unknown"],
)
async def test_calls_without_a_valid_key_are_unauthenticated(
    server: FeedbackServer, project: str, rpc: str, credential: str
) -> None:
    metadata = (("authorization", credential),) if credential else ()
    assert await _code(server, metadata, rpc, project) == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("rpc", RPCS)
async def test_a_key_of_project_a_never_reaches_project_b(server: FeedbackServer, project: str, rpc: str) -> None:
    key = await create_key(server, project, "ingest", "annotate", "read", "admin")
    other = project + "-other"
    code = await _code(server, (("authorization", f"Bearer {key}"),), rpc, other)
    assert code == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("rpc", RPCS)
async def test_each_rpc_needs_its_scope(server: FeedbackServer, project: str, rpc: str) -> None:
    needed = rpc_calls(project)[rpc][0]
    # Creating feedback and reading schemas, queues and agreement are also open to annotate keys.
    also_allowed = "annotate" if rpc in ALSO_ANNOTATE else needed
    others = [s for s in SCOPES if s not in {needed, also_allowed}]
    without = await create_key(server, project, *others)
    assert await _code(server, (("authorization", f"Bearer {without}"),), rpc, project) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    with_scope = await create_key(server, project, needed)
    code = await _code(server, (("authorization", f"Bearer {with_scope}"),), rpc, project)
    assert code not in {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}


# The reads a reviewer needs (key schemas, queues, agreement): open to read keys and to annotate keys.
REVIEWER_READS = {
    "GetFeedbackKey": "feedback_keys.proto",
    "ListFeedbackKeys": "feedback_keys.proto",
    "ListQueues": "annotation.proto",
    "GetQueueStats": "annotation.proto",
    "GetAgreement": "annotation.proto",
}
ROOT = Path(__file__).resolve().parents[1]


def _rpc_comment(proto: str, rpc: str) -> str:
    """The comment block right above ``rpc <name>(`` in a .proto file, as one line."""
    lines = proto.splitlines()
    at = next(n for n, line in enumerate(lines) if line.strip().startswith(f"rpc {rpc}("))
    comment: list[str] = []
    while at > 0 and lines[at - 1].strip().startswith("//"):
        at -= 1
        comment.insert(0, lines[at].strip().removeprefix("//").strip())
    return " ".join(comment)


def _readme_scope_row(scope: str) -> str:
    readme = (ROOT / "README.md").read_text()
    return next(line for line in readme.splitlines() if line.startswith(f"| `{scope}` |"))


@pytest.mark.parametrize("rpc", REVIEWER_READS)
async def test_reviewer_reads_need_read_or_annotate_as_documented(
    server: FeedbackServer, project: str, rpc: str
) -> None:
    for scopes, allowed in ((("annotate",), True), (("read",), True), (("ingest", "admin"), False)):
        key = await create_key(server, project, *scopes)
        code = await _code(server, (("authorization", f"Bearer {key}"),), rpc, project)
        if allowed:
            assert code not in {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}, scopes
        else:
            assert code == grpc.StatusCode.PERMISSION_DENIED, scopes
    comment = _rpc_comment((ROOT / "protos/feedback/v1" / REVIEWER_READS[rpc]).read_text(), rpc)
    assert "Needs the read or the annotate scope." in comment, comment
    for scope in ("read", "annotate"):
        assert f"`{rpc}`" in _readme_scope_row(scope), f"the README's {scope} row must name {rpc}"


# What console links may call (the rest is PERMISSION_DENIED): reviewing, or reading dashboards.
REVIEWER_LINK_RPCS = {
    "ListQueues", "GetQueueStats", "GetAgreement", "GetFeedbackKey", "ListFeedbackKeys", "ClaimNextItem",
    "GetItemContext", "SubmitAnnotation", "SkipItem",
}  # fmt: skip
READ_LINK_RPCS = {
    "ListQueues", "GetQueueStats", "GetAgreement", "GetFeedbackKey", "ListFeedbackKeys", "StreamAggregates",
    "CompareVersions",
}  # fmt: skip


@pytest.mark.parametrize("rpc", RPCS)
@pytest.mark.parametrize("read", [False, True], ids=["reviewer-link", "read-link"])
async def test_a_console_link_calls_only_what_its_kind_allows(
    server: FeedbackServer, project: str, rpc: str, read: bool
) -> None:
    async with authorized_channel(f"127.0.0.1:{server.port}", ADMIN_KEY) as channel:
        minter = annotation_pb2_grpc.AnnotationServiceStub(channel)
        request = ann.CreateConsoleLinkRequest(project=project, reviewer="r", read=read)
        link = (await minter.CreateConsoleLink(request)).token
    code = await _code(server, (("authorization", f"Bearer {link}"),), rpc, project)
    if rpc in (READ_LINK_RPCS if read else REVIEWER_LINK_RPCS):
        assert code not in {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}, code
    else:
        assert code == grpc.StatusCode.PERMISSION_DENIED
    # And never another project's.
    assert await _code(server, (("authorization", f"Bearer {link}"),), rpc, project + "-b") == (
        grpc.StatusCode.PERMISSION_DENIED
    )


async def test_the_project_comes_from_the_key(server: FeedbackServer, project: str) -> None:
    key = await create_key(server, project, "ingest", "read")
    async with authorized_channel(f"127.0.0.1:{server.port}", key) as channel:
        stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
        anonymous = thumbs_up("", feedback_id="no-project-named")
        stored = (await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=anonymous))).feedback
        assert stored.project == project
        listed = await stub.ListFeedback(pb.ListFeedbackRequest())
        assert [f.feedback_id for f in listed.feedback] == ["no-project-named"]


async def test_revoked_keys_stop_working_at_once(server: FeedbackServer, project: str) -> None:
    key = await create_key(server, project, "read")
    key_id = key.split("_")[1]
    async with authorized_channel(f"127.0.0.1:{server.port}", key) as channel:
        stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
        await stub.ListFeedback(pb.ListFeedbackRequest())
        async with authorized_channel(f"127.0.0.1:{server.port}", ADMIN_KEY) as admin_channel:
            admin = api_keys_pb2_grpc.ApiKeyServiceStub(admin_channel)
            revoked = (await admin.RevokeApiKey(keys_pb.RevokeApiKeyRequest(key_id=key_id))).api_key
            assert revoked.HasField("revoke_time")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListFeedback(pb.ListFeedbackRequest())
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "revoked" in (caught.value.details() or "")


async def test_project_admins_manage_only_their_own_keys(server: FeedbackServer, project: str) -> None:
    admin_key = await create_key(server, project, "admin")
    foreign = await create_key(server, project + "-b", "read")
    async with authorized_channel(f"127.0.0.1:{server.port}", admin_key) as channel:
        admin = api_keys_pb2_grpc.ApiKeyServiceStub(channel)
        created = await admin.CreateApiKey(keys_pb.CreateApiKeyRequest(name="web", scopes=[keys_pb.SCOPE_INGEST]))
        assert created.api_key.project == project
        assert created.key.startswith(f"fbk_{created.api_key.key_id}_")
        listed = await admin.ListApiKeys(keys_pb.ListApiKeysRequest())
        assert {k.key_id for k in listed.api_keys} == {admin_key.split("_")[1], created.api_key.key_id}
        assert all(k.project == project for k in listed.api_keys)
        for call in (
            admin.RevokeApiKey(keys_pb.RevokeApiKeyRequest(key_id=foreign.split("_")[1])),
            admin.ListApiKeys(keys_pb.ListApiKeysRequest(project=project + "-b")),
            admin.CreateApiKey(keys_pb.CreateApiKeyRequest(project=project + "-b", scopes=[keys_pb.SCOPE_READ])),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() in {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED}


async def test_keys_are_stored_only_as_hashes(server: FeedbackServer, project: str) -> None:
    key = await create_key(server, project, "read")
    rows = await server.engine.run(lambda client: client.query("SELECT * FROM api_keys").result_rows)
    assert rows
    assert not any(key in str(value) or key.split("_", 2)[2] in str(value) for row in rows for value in row)


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [({"scopes": []}, "scopes"), ({"scopes": [9]}, "scopes"), ({"name": "n" * 257}, "name")],
)
async def test_bad_key_requests_are_invalid_argument(
    server: FeedbackServer, project: str, request_fields: dict[str, Any], field: str
) -> None:
    async with authorized_channel(f"127.0.0.1:{server.port}", ADMIN_KEY) as channel:
        admin = api_keys_pb2_grpc.ApiKeyServiceStub(channel)
        values = {"project": project, "scopes": [keys_pb.SCOPE_READ], **request_fields}
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await admin.CreateApiKey(keys_pb.CreateApiKeyRequest(**values))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (caught.value.details() or "")


@pytest.fixture
async def open_server(engine_dir: Path) -> AsyncIterator[FeedbackServer]:
    settings = Settings(
        listen="127.0.0.1:0",
        http_listen=None,
        data_dir=engine_dir,
        clickhouse_database="no_auth_tests",
        insecure_no_auth=True,
    )
    running = FeedbackServer(settings)
    await running.start()
    yield running
    await running.stop(grace_s=1)


async def test_with_auth_off_calls_need_no_key(open_server: FeedbackServer) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{open_server.port}") as channel:
        stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
        await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project)))
        listed = await stub.ListFeedback(pb.ListFeedbackRequest(project=project))
        assert len(listed.feedback) == 1


async def test_the_key_that_created_updated_and_deleted_feedback_is_recorded(
    server: FeedbackServer, project: str
) -> None:
    writer = await create_key(server, project, "ingest")
    reviewer = await create_key(server, project, "annotate", "read")
    async with authorized_channel(f"127.0.0.1:{server.port}", writer) as channel:
        stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
        created = (await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project)))).feedback
    assert created.created_by == created.updated_by == writer.split("_")[1]
    async with authorized_channel(f"127.0.0.1:{server.port}", reviewer) as channel:
        stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
        change = feedback_pb2.Feedback(feedback_id=created.feedback_id, comment="checked")
        updated = (await stub.UpdateFeedback(pb.UpdateFeedbackRequest(feedback=change))).feedback
        assert (updated.created_by, updated.updated_by) == (writer.split("_")[1], reviewer.split("_")[1])
        fetched = (await stub.GetFeedback(pb.GetFeedbackRequest(feedback_id=created.feedback_id))).feedback
        assert fetched.updated_by == reviewer.split("_")[1]
        await stub.DeleteFeedback(pb.DeleteFeedbackRequest(feedback_id=created.feedback_id))
    tombstone = await server.engine.run(
        lambda client: (
            client.query(
                "SELECT updated_by FROM feedback WHERE project = {p:String} AND is_deleted = 1",
                parameters={"p": project},
            ).result_rows
        )
    )
    assert tombstone == [(reviewer.split("_")[1],)]


def test_the_bootstrap_admin_key_can_come_from_a_file(tmp_path: Path) -> None:
    from feedback_service.config import ConfigError

    key_file = tmp_path / "admin.key"
    key_file.write_text("a-long-enough-admin-key-from-a-file\n")
    assert Settings(admin_key_file=key_file).configured_admin_key() == "a-long-enough-admin-key-from-a-file"
    assert Settings(admin_key="from-the-environment-x", admin_key_file=key_file).configured_admin_key() == (
        "from-the-environment-x"
    )
    key_file.write_text("short\n")
    with pytest.raises(ConfigError, match="FEEDBACK_ADMIN_KEY_FILE"):
        Settings(admin_key_file=key_file).configured_admin_key()
    with pytest.raises(ConfigError, match="FEEDBACK_ADMIN_KEY_FILE"):
        Settings(admin_key_file=tmp_path / "missing").configured_admin_key()
