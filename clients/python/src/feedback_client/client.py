"""The asyncio client of feedback.v1: every RPC, conveniences, background batching, retries."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from feedback_client import builders
from feedback_client.batching import BackgroundBatcher, BatchingOptions, BatchStats
from feedback_client.connection import DEFAULT_TARGET, Connection, Deadlines
from feedback_client.console_links import ConsoleLink
from feedback_client.errors import FeedbackError
from feedback_client.retry import (
    IDEMPOTENT_RETRY_CODES,
    NON_IDEMPOTENT_RETRY_CODES,
    RetryPolicy,
    call_with_retry,
)
from feedback_client.streams import ReconnectHandler, remember_cursor, resumable
from feedback_proto.v1 import (
    annotation_pb2,
    annotation_pb2_grpc,
    api_keys_pb2,
    api_keys_pb2_grpc,
    feedback_keys_pb2,
    feedback_keys_pb2_grpc,
    feedback_pb2,
    feedback_service_pb2,
)
from feedback_proto.v1 import feedback_service_pb2_grpc as service_grpc

if TYPE_CHECKING:
    from feedback_proto.v1.annotation_pb2_grpc import AnnotationServiceAsyncStub
    from feedback_proto.v1.api_keys_pb2_grpc import ApiKeyServiceAsyncStub
    from feedback_proto.v1.feedback_keys_pb2_grpc import FeedbackKeyServiceAsyncStub
    from feedback_proto.v1.feedback_service_pb2_grpc import FeedbackServiceAsyncStub

Response = TypeVar("Response")
_UNSET: Any = object()


class FeedbackClient:
    """Async client: ``async with FeedbackClient("host:50051", api_key=...) as client: ...``.

    - Every call raises :class:`FeedbackError` instead of raw gRPC errors, and has a default deadline
      (``deadlines``) that ``timeout_s=`` overrides.
    - Idempotent calls are retried on UNAVAILABLE, RESOURCE_EXHAUSTED (after the server's RetryInfo
      delay) and DEADLINE_EXCEEDED; creates are idempotent because the client sets the feedback id.
      UpdateFeedback and DeleteFeedback are retried only on RESOURCE_EXHAUSTED, which the server
      returns before doing anything. INVALID_ARGUMENT and other refusals are never retried.
    - ``log()`` buffers feedback and sends it in the background (see :mod:`feedback_client.batching`).
    - ``project`` fills the project of feedback and requests that leave it empty; with a project API
      key the server fills it in anyway.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        api_key: str | None = None,
        feedback_token: str | None = None,
        project: str = "",
        tls: bool = False,
        root_certificates: bytes | None = None,
        client_certificate: bytes | None = None,
        client_key: bytes | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        deadlines: Deadlines | None = None,
        timeout_s: float | None = None,
        retry: RetryPolicy | None = None,
        batching: BatchingOptions | None = None,
    ) -> None:
        deadlines = deadlines or Deadlines()
        if timeout_s is not None:  # shorthand for the unary deadline
            deadlines = Deadlines(unary_s=timeout_s, batch_s=max(timeout_s, deadlines.batch_s), stream_s=None)
        self._connection = Connection(
            target=target,
            api_key=api_key,
            feedback_token=feedback_token,
            tls=tls,
            root_certificates=root_certificates,
            client_certificate=client_certificate,
            client_key=client_key,
            credentials=credentials,
            deadlines=deadlines,
            retry=retry or RetryPolicy(),
        )
        self._project = project
        self._channel = self._connection.open_channel()
        self._stub: FeedbackServiceAsyncStub = service_grpc.FeedbackServiceStub(self._channel)  # type: ignore[assignment]
        self._keys_stub: ApiKeyServiceAsyncStub = api_keys_pb2_grpc.ApiKeyServiceStub(self._channel)  # type: ignore[assignment]
        self._schema_stub: FeedbackKeyServiceAsyncStub = feedback_keys_pb2_grpc.FeedbackKeyServiceStub(self._channel)  # type: ignore[assignment]
        self._review_stub: AnnotationServiceAsyncStub = annotation_pb2_grpc.AnnotationServiceStub(self._channel)  # type: ignore[assignment]
        self._metadata = self._connection.metadata()
        self._batcher = BackgroundBatcher(self._open_batch_sender, batching or BatchingOptions(), self.retry, project)

    @classmethod
    def from_connection(
        cls, connection: Connection, *, project: str = "", batching: BatchingOptions | None = None
    ) -> FeedbackClient:
        return cls(
            connection.target,
            api_key=connection.api_key,
            feedback_token=connection.feedback_token,
            project=project,
            tls=connection.tls,
            root_certificates=connection.root_certificates,
            client_certificate=connection.client_certificate,
            client_key=connection.client_key,
            credentials=connection.credentials,
            deadlines=connection.deadlines,
            retry=connection.retry,
            batching=batching,
        )

    @property
    def connection(self) -> Connection:
        return self._connection

    @property
    def retry(self) -> RetryPolicy:
        return self._connection.retry

    async def __aenter__(self) -> FeedbackClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Deliver what ``log()`` buffered, then close the channel."""
        await asyncio.to_thread(self._batcher.close)
        await self._channel.close()

    # ---- plumbing ---------------------------------------------------------------------------

    async def _call(
        self,
        method: Callable[..., Awaitable[Response]],
        request: object,
        timeout_s: float | None,
        retry_codes: frozenset[grpc.StatusCode] = IDEMPOTENT_RETRY_CODES,
    ) -> Response:
        async def attempt() -> Response:
            try:
                return await method(request, timeout=timeout_s, metadata=self._metadata)
            except grpc.aio.AioRpcError as error:
                raise FeedbackError.from_rpc_error(error) from None

        return await call_with_retry(attempt, self.retry, retry_codes)

    def _unary_timeout(self, timeout_s: float | None) -> float | None:
        return self._connection.deadlines.unary_s if timeout_s is _UNSET else timeout_s

    def _with_identity(self, feedback: feedback_pb2.Feedback) -> feedback_pb2.Feedback:
        """A copy with a client-side feedback id (so retries are idempotent) and the default project."""
        item = feedback_pb2.Feedback()
        item.CopyFrom(feedback)
        if not item.feedback_id:
            item.feedback_id = str(uuid.uuid4())
        if not item.project:
            item.project = self._project
        return item

    # ---- FeedbackService ----------------------------------------------------------------------

    async def create(
        self, feedback: feedback_pb2.Feedback, *, feedback_token: str = "", timeout_s: float | None = _UNSET
    ) -> feedback_pb2.Feedback:
        """Store feedback now; returns it as stored. Safe to retry: the client sets ``feedback_id``."""
        request = feedback_service_pb2.CreateFeedbackRequest(
            feedback=self._with_identity(feedback), feedback_token=feedback_token
        )
        response: feedback_service_pb2.CreateFeedbackResponse = await self._call(
            self._stub.CreateFeedback, request, self._unary_timeout(timeout_s)
        )
        return response.feedback

    async def batch_create(
        self, items: Sequence[feedback_pb2.Feedback], *, timeout_s: float | None = _UNSET
    ) -> list[feedback_pb2.Feedback | FeedbackError]:
        """Store up to 1,000 items now; one result per item: the stored feedback or its error.

        Items refused for a transient reason are retried (they keep their ids); the rest are returned.
        """
        pending = [self._with_identity(item) for item in items]
        timeout = self._connection.deadlines.batch_s if timeout_s is _UNSET else timeout_s
        results: dict[str, feedback_pb2.Feedback | FeedbackError] = {}

        async def attempt() -> None:
            nonlocal pending
            outcome = await self._send_batch(pending, timeout)
            retry = []
            for item, result in zip(pending, outcome, strict=True):
                results[item.feedback_id] = result
                if isinstance(result, FeedbackError) and result.code in IDEMPOTENT_RETRY_CODES:
                    retry.append(item)
            pending = retry
            if retry:
                raise next(r for r in outcome if isinstance(r, FeedbackError) and r.code in IDEMPOTENT_RETRY_CODES)

        ids = [item.feedback_id for item in pending]
        try:
            await call_with_retry(attempt, self.retry, IDEMPOTENT_RETRY_CODES)
        except FeedbackError:
            if not results:
                raise  # the whole call failed every time: nothing to report per item
        return [results[feedback_id] for feedback_id in ids]

    async def _send_batch(
        self, items: list[feedback_pb2.Feedback], timeout_s: float | None
    ) -> list[feedback_pb2.Feedback | FeedbackError]:
        """One BatchCreateFeedback attempt."""
        request = feedback_service_pb2.BatchCreateFeedbackRequest(feedback=items)
        try:
            response = await self._stub.BatchCreateFeedback(request, timeout=timeout_s, metadata=self._metadata)
        except grpc.aio.AioRpcError as error:
            raise FeedbackError.from_rpc_error(error) from None
        return [
            result.feedback if result.HasField("feedback") else FeedbackError.from_status_proto(result.error)
            for result in response.results
        ]

    async def get(
        self, feedback_id: str, *, project: str = "", timeout_s: float | None = _UNSET
    ) -> feedback_pb2.Feedback:
        request = feedback_service_pb2.GetFeedbackRequest(project=project or self._project, feedback_id=feedback_id)
        response: feedback_service_pb2.GetFeedbackResponse = await self._call(
            self._stub.GetFeedback, request, self._unary_timeout(timeout_s)
        )
        return response.feedback

    async def list_page(
        self, request: feedback_service_pb2.ListFeedbackRequest, *, timeout_s: float | None = _UNSET
    ) -> feedback_service_pb2.ListFeedbackResponse:
        """One page of ListFeedback (newest first)."""
        page_request = self._scoped(request)
        return await self._call(self._stub.ListFeedback, page_request, self._unary_timeout(timeout_s))

    async def iter_feedback(
        self, request: feedback_service_pb2.ListFeedbackRequest | None = None, *, timeout_s: float | None = _UNSET
    ) -> AsyncIterator[feedback_pb2.Feedback]:
        """Every matching feedback, newest first, fetching pages as needed."""
        page_request = self._scoped(request or feedback_service_pb2.ListFeedbackRequest())
        while True:
            page = await self.list_page(page_request, timeout_s=timeout_s)
            for feedback in page.feedback:
                yield feedback
            if not page.next_page_token:
                return
            page_request.page_token = page.next_page_token

    async def update(
        self, feedback: feedback_pb2.Feedback, paths: Iterable[str] = (), *, timeout_s: float | None = _UNSET
    ) -> feedback_pb2.Feedback:
        """Change the fields named in ``paths`` (all set fields when empty); returns the new revision."""
        item = feedback_pb2.Feedback()
        item.CopyFrom(feedback)
        item.project = item.project or self._project
        request = feedback_service_pb2.UpdateFeedbackRequest(feedback=item, update_mask=FieldMask(paths=list(paths)))
        response: feedback_service_pb2.UpdateFeedbackResponse = await self._call(
            self._stub.UpdateFeedback, request, self._unary_timeout(timeout_s), NON_IDEMPOTENT_RETRY_CODES
        )
        return response.feedback

    async def delete(self, feedback_id: str, *, project: str = "", timeout_s: float | None = _UNSET) -> None:
        request = feedback_service_pb2.DeleteFeedbackRequest(project=project or self._project, feedback_id=feedback_id)
        await self._call(self._stub.DeleteFeedback, request, self._unary_timeout(timeout_s), NON_IDEMPOTENT_RETRY_CODES)

    async def stream_aggregates(
        self,
        request: feedback_service_pb2.StreamAggregatesRequest,
        *,
        timeout_s: float | None = _UNSET,
        resume: bool = True,
        on_reconnect: ReconnectHandler | None = None,
    ) -> AsyncIterator[feedback_service_pb2.StreamAggregatesResponse]:
        """Aggregates per group: the snapshot, a SnapshotComplete marker, then (with follow) updates.

        With ``resume`` (the default), a stream broken by a transient failure (e.g. a server restart)
        is reopened with backoff; the new stream starts with a fresh snapshot followed by a new
        SnapshotComplete. Groups carry totals, not deltas, so the latest message per group is right.
        A following stream that has worked keeps reconnecting (UNAVAILABLE when its server shuts down)
        until it is closed; ``on_reconnect(error, delay_s)`` is told of each reconnection (default: a
        warning on the ``feedback_client.streams`` logger).
        """
        stream_request = feedback_service_pb2.StreamAggregatesRequest()
        stream_request.CopyFrom(request)
        if not stream_request.filter.project:
            stream_request.filter.project = self._project
        timeout = self._connection.deadlines.stream_s if timeout_s is _UNSET else timeout_s
        opener = self._opener(self._stub.StreamAggregates, timeout)
        retry = self.retry if resume else None
        follow = stream_request.follow
        async for message in resumable(opener, stream_request, retry, follow=follow, on_reconnect=on_reconnect):
            yield message

    async def export(
        self,
        request: feedback_service_pb2.ExportFeedbackRequest,
        *,
        timeout_s: float | None = _UNSET,
        resume: bool = True,
        on_reconnect: ReconnectHandler | None = None,
    ) -> AsyncIterator[feedback_service_pb2.ExportFeedbackResponse]:
        """Chunks of raw feedback, each with the cursor to resume after it.

        With ``resume`` (the default), a transient failure reopens the export from the last cursor
        received, so no chunk is repeated or skipped; with ``follow``, as for ``stream_aggregates``.
        """
        export_request = feedback_service_pb2.ExportFeedbackRequest()
        export_request.CopyFrom(request)
        if not export_request.filter.project:
            export_request.filter.project = self._project
        timeout = self._connection.deadlines.stream_s if timeout_s is _UNSET else timeout_s
        opener = self._opener(self._stub.ExportFeedback, timeout)
        retry = self.retry if resume else None
        follow = export_request.follow
        async for chunk in resumable(
            opener, export_request, retry, remember_cursor, follow=follow, on_reconnect=on_reconnect
        ):
            yield chunk

    def _opener(self, method: Callable[..., Any], timeout_s: float | None) -> Callable[[Any], Any]:
        def open_call(request: Any) -> Any:
            return method(request, timeout=timeout_s, metadata=self._metadata)

        return open_call

    async def compare_versions(
        self, request: feedback_service_pb2.CompareVersionsRequest, *, timeout_s: float | None = _UNSET
    ) -> feedback_service_pb2.CompareVersionsResponse:
        compare_request = feedback_service_pb2.CompareVersionsRequest()
        compare_request.CopyFrom(request)
        compare_request.project = compare_request.project or self._project
        return await self._call(self._stub.CompareVersions, compare_request, self._unary_timeout(timeout_s))

    async def mint_feedback_token(
        self, request: feedback_service_pb2.MintFeedbackTokenRequest, *, timeout_s: float | None = _UNSET
    ) -> feedback_service_pb2.MintFeedbackTokenResponse:
        """A signed end-user feedback token for one AI call (needs a key with the ingest scope)."""
        mint_request = feedback_service_pb2.MintFeedbackTokenRequest()
        mint_request.CopyFrom(request)
        mint_request.project = mint_request.project or self._project
        return await self._call(self._stub.MintFeedbackToken, mint_request, self._unary_timeout(timeout_s))

    def _scoped(self, request: feedback_service_pb2.ListFeedbackRequest) -> feedback_service_pb2.ListFeedbackRequest:
        scoped = feedback_service_pb2.ListFeedbackRequest()
        scoped.CopyFrom(request)
        scoped.project = scoped.project or self._project
        return scoped

    # ---- ApiKeyService ------------------------------------------------------------------------

    async def create_api_key(
        self, request: api_keys_pb2.CreateApiKeyRequest, *, timeout_s: float | None = _UNSET
    ) -> api_keys_pb2.CreateApiKeyResponse:
        """Create a key (admin scope); the response holds the key, shown only now.

        An empty project is the client's. Not retried: a lost response would leave a second key.
        """
        scoped = api_keys_pb2.CreateApiKeyRequest()
        scoped.CopyFrom(request)
        scoped.project = scoped.project or self._project
        return await self._call(
            self._keys_stub.CreateApiKey, scoped, self._unary_timeout(timeout_s), NON_IDEMPOTENT_RETRY_CODES
        )

    async def list_api_keys(
        self, request: api_keys_pb2.ListApiKeysRequest | None = None, *, timeout_s: float | None = _UNSET
    ) -> api_keys_pb2.ListApiKeysResponse:
        """A project's keys, active and revoked, without their secrets (admin scope); default: the client's project."""
        scoped = api_keys_pb2.ListApiKeysRequest()
        if request is not None:
            scoped.CopyFrom(request)
        scoped.project = scoped.project or self._project
        return await self._call(self._keys_stub.ListApiKeys, scoped, self._unary_timeout(timeout_s))

    async def revoke_api_key(self, key_id: str, *, timeout_s: float | None = _UNSET) -> api_keys_pb2.ApiKey:
        """Revoke a key by its id (admin scope); returns its record. An unknown id is NOT_FOUND."""
        request = api_keys_pb2.RevokeApiKeyRequest(key_id=key_id)
        response: api_keys_pb2.RevokeApiKeyResponse = await self._call(
            self._keys_stub.RevokeApiKey, request, self._unary_timeout(timeout_s)
        )
        return response.api_key

    # ---- FeedbackKeyService: key schemas -------------------------------------------------------

    async def create_feedback_key(
        self, feedback_key: feedback_keys_pb2.FeedbackKey, *, timeout_s: float | None = _UNSET
    ) -> feedback_keys_pb2.FeedbackKey:
        """Define a key's schema; feedback for the key is validated against it from then on."""
        request = feedback_keys_pb2.CreateFeedbackKeyRequest(feedback_key=feedback_key)
        request.feedback_key.project = request.feedback_key.project or self._project
        response: feedback_keys_pb2.CreateFeedbackKeyResponse = await self._call(
            self._schema_stub.CreateFeedbackKey, request, self._unary_timeout(timeout_s), NON_IDEMPOTENT_RETRY_CODES
        )
        return response.feedback_key

    async def get_feedback_key(
        self, name: str, *, project: str = "", timeout_s: float | None = _UNSET
    ) -> feedback_keys_pb2.FeedbackKey:
        request = feedback_keys_pb2.GetFeedbackKeyRequest(project=project or self._project, name=name)
        response: feedback_keys_pb2.GetFeedbackKeyResponse = await self._call(
            self._schema_stub.GetFeedbackKey, request, self._unary_timeout(timeout_s)
        )
        return response.feedback_key

    async def list_feedback_keys(
        self, *, project: str = "", show_archived: bool = False, timeout_s: float | None = _UNSET
    ) -> list[feedback_keys_pb2.FeedbackKey]:
        request = feedback_keys_pb2.ListFeedbackKeysRequest(
            project=project or self._project, show_archived=show_archived
        )
        response: feedback_keys_pb2.ListFeedbackKeysResponse = await self._call(
            self._schema_stub.ListFeedbackKeys, request, self._unary_timeout(timeout_s)
        )
        return list(response.feedback_keys)

    async def update_feedback_key(
        self,
        feedback_key: feedback_keys_pb2.FeedbackKey,
        paths: Iterable[str] = (),
        *,
        timeout_s: float | None = _UNSET,
    ) -> feedback_keys_pb2.FeedbackKey:
        request = feedback_keys_pb2.UpdateFeedbackKeyRequest(
            feedback_key=feedback_key, update_mask=FieldMask(paths=list(paths))
        )
        request.feedback_key.project = request.feedback_key.project or self._project
        response: feedback_keys_pb2.UpdateFeedbackKeyResponse = await self._call(
            self._schema_stub.UpdateFeedbackKey, request, self._unary_timeout(timeout_s), NON_IDEMPOTENT_RETRY_CODES
        )
        return response.feedback_key

    async def archive_feedback_key(
        self, name: str, *, project: str = "", timeout_s: float | None = _UNSET
    ) -> feedback_keys_pb2.FeedbackKey:
        request = feedback_keys_pb2.ArchiveFeedbackKeyRequest(project=project or self._project, name=name)
        response: feedback_keys_pb2.ArchiveFeedbackKeyResponse = await self._call(
            self._schema_stub.ArchiveFeedbackKey, request, self._unary_timeout(timeout_s)
        )
        return response.feedback_key

    # ---- AnnotationService: queues, claims, agreement -------------------------------------------

    async def create_queue(
        self, queue: annotation_pb2.Queue, *, timeout_s: float | None = _UNSET
    ) -> annotation_pb2.Queue:
        request = annotation_pb2.CreateQueueRequest(queue=queue)
        request.queue.project = request.queue.project or self._project
        response: annotation_pb2.CreateQueueResponse = await self._call(
            self._review_stub.CreateQueue, request, self._unary_timeout(timeout_s), NON_IDEMPOTENT_RETRY_CODES
        )
        return response.queue

    async def add_queue_items(
        self, request: annotation_pb2.AddQueueItemsRequest, *, timeout_s: float | None = _UNSET
    ) -> annotation_pb2.AddQueueItemsResponse:
        """Add traces, or every trace whose feedback matches ``from_feedback``; re-adding is harmless."""
        scoped = annotation_pb2.AddQueueItemsRequest()
        scoped.CopyFrom(request)
        scoped.project = scoped.project or self._project
        return await self._call(self._review_stub.AddQueueItems, scoped, self._unary_timeout(timeout_s))

    async def list_queues(self, *, project: str = "", timeout_s: float | None = _UNSET) -> list[annotation_pb2.Queue]:
        request = annotation_pb2.ListQueuesRequest(project=project or self._project)
        response: annotation_pb2.ListQueuesResponse = await self._call(
            self._review_stub.ListQueues, request, self._unary_timeout(timeout_s)
        )
        return list(response.queues)

    async def get_queue_stats(
        self, queue_id: str, *, project: str = "", timeout_s: float | None = _UNSET
    ) -> annotation_pb2.GetQueueStatsResponse:
        request = annotation_pb2.GetQueueStatsRequest(project=project or self._project, queue_id=queue_id)
        return await self._call(self._review_stub.GetQueueStats, request, self._unary_timeout(timeout_s))

    async def claim_next_item(
        self, queue_id: str, reviewer: str, *, project: str = "", timeout_s: float | None = _UNSET
    ) -> annotation_pb2.ClaimNextItemResponse | None:
        """The next item for ``reviewer`` with its lease, or None when nothing is left for them.

        Retried only on RESOURCE_EXHAUSTED: a lost response would leave a claim held until its lease ends.
        """
        request = annotation_pb2.ClaimNextItemRequest(
            project=project or self._project, queue_id=queue_id, reviewer=reviewer
        )
        try:
            response: annotation_pb2.ClaimNextItemResponse = await self._call(
                self._review_stub.ClaimNextItem, request, self._unary_timeout(timeout_s), NON_IDEMPOTENT_RETRY_CODES
            )
        except FeedbackError as error:
            if error.reason == "QUEUE_EMPTY":
                return None
            raise
        return response

    async def submit_annotation(
        self,
        queue_id: str,
        claim_id: str,
        feedback: Sequence[feedback_pb2.Feedback],
        *,
        project: str = "",
        timeout_s: float | None = _UNSET,
    ) -> list[feedback_pb2.Feedback]:
        """Store the reviewer's feedback on a claimed item (all or nothing); safe to retry."""
        request = annotation_pb2.SubmitAnnotationRequest(
            project=project or self._project, queue_id=queue_id, claim_id=claim_id, feedback=feedback
        )
        response: annotation_pb2.SubmitAnnotationResponse = await self._call(
            self._review_stub.SubmitAnnotation, request, self._unary_timeout(timeout_s)
        )
        return list(response.feedback)

    async def skip_item(
        self, queue_id: str, claim_id: str, *, project: str = "", timeout_s: float | None = _UNSET
    ) -> None:
        request = annotation_pb2.SkipItemRequest(project=project or self._project, queue_id=queue_id, claim_id=claim_id)
        await self._call(
            self._review_stub.SkipItem, request, self._unary_timeout(timeout_s), NON_IDEMPOTENT_RETRY_CODES
        )

    async def get_item_context(
        self, queue_id: str, claim_id: str, *, project: str = "", timeout_s: float | None = _UNSET
    ) -> annotation_pb2.GetItemContextResponse:
        """The claimed item (content, trace link) and end users' feedback on its trace; for the claim's holder."""
        request = annotation_pb2.GetItemContextRequest(
            project=project or self._project, queue_id=queue_id, claim_id=claim_id
        )
        return await self._call(self._review_stub.GetItemContext, request, self._unary_timeout(timeout_s))

    async def create_console_link(
        self,
        *,
        project: str = "",
        reviewer: str,
        queue: str | None = None,
        read: bool = False,
        ttl: timedelta = timedelta(days=7),
        timeout_s: float | None = _UNSET,
    ) -> ConsoleLink:
        """A signed, expiring link to the web console for one person (needs the annotate or admin scope).

        ``reviewer``: who the link is for; a reviewing link claims and submits as this reviewer only.
        ``queue``: bind the link to one queue. ``read``: a read-only dashboard link. ``ttl``: at most 30 days.
        """
        request = annotation_pb2.CreateConsoleLinkRequest(
            project=project or self._project, reviewer=reviewer, queue_id=queue or "", read=read
        )
        request.ttl.FromTimedelta(ttl)
        response: annotation_pb2.CreateConsoleLinkResponse = await self._call(
            self._review_stub.CreateConsoleLink, request, self._unary_timeout(timeout_s)
        )
        return ConsoleLink(
            url=response.url,
            token=response.token,
            expire_time=response.expire_time.ToDatetime(tzinfo=UTC),
        )

    async def get_agreement(
        self, request: annotation_pb2.GetAgreementRequest, *, timeout_s: float | None = _UNSET
    ) -> list[annotation_pb2.KeyAgreement]:
        """Agreement between reviewers per key, for a queue or a key."""
        scoped = annotation_pb2.GetAgreementRequest()
        scoped.CopyFrom(request)
        scoped.project = scoped.project or self._project
        response: annotation_pb2.GetAgreementResponse = await self._call(
            self._review_stub.GetAgreement, scoped, self._unary_timeout(timeout_s)
        )
        return list(response.agreements)

    # ---- conveniences: store one piece of feedback now ----------------------------------------

    async def thumbs_up(
        self, trace_id: str | None = None, **options: Unpack[builders.FeedbackContext]
    ) -> feedback_pb2.Feedback:
        """Store a thumbs-up (key ``thumbs``, source USER) on a trace; see :mod:`feedback_client.builders`."""
        return await self.create(builders.thumbs_up(trace_id, **options))

    async def thumbs_down(
        self, trace_id: str | None = None, **options: Unpack[builders.FeedbackContext]
    ) -> feedback_pb2.Feedback:
        """Store a thumbs-down (key ``thumbs``, source USER) on a trace."""
        return await self.create(builders.thumbs_down(trace_id, **options))

    async def score(
        self, trace_id: str | None = None, *, key: str, value: float, **options: Unpack[builders.FeedbackContext]
    ) -> feedback_pb2.Feedback:
        """Store a numeric score under ``key``."""
        return await self.create(builders.score(trace_id, key=key, value=value, **options))

    async def label(
        self, trace_id: str | None = None, *, key: str, value: str, **options: Unpack[builders.FeedbackContext]
    ) -> feedback_pb2.Feedback:
        """Store a categorical label under ``key``."""
        return await self.create(builders.label(trace_id, key=key, value=value, **options))

    async def comment(
        self, trace_id: str | None = None, *, text: str, **options: Unpack[builders.FeedbackContext]
    ) -> feedback_pb2.Feedback:
        """Store a free-text comment (key ``comment``)."""
        return await self.create(builders.comment(trace_id, text=text, **options))

    async def correct(
        self, trace_id: str | None = None, *, correction: str, **options: Unpack[builders.FeedbackContext]
    ) -> feedback_pb2.Feedback:
        """Store the right output for a trace (key ``correction``)."""
        return await self.create(builders.correct(trace_id, correction=correction, **options))

    # ---- background batching -------------------------------------------------------------------

    def log(self, feedback: feedback_pb2.Feedback) -> str | None:
        """Buffer feedback for background sending; returns its id at once (None if the buffer dropped it)."""
        return self._batcher.log(feedback)

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until everything logged so far is delivered (or failed); False on timeout."""
        return await asyncio.to_thread(self._batcher.flush, timeout_s)

    def batch_stats(self) -> BatchStats:
        return self._batcher.stats()

    async def _open_batch_sender(self) -> _BatchSender:
        """Runs on the batcher's own thread and loop: a client of its own, sharing only configuration."""
        return _BatchSender(FeedbackClient.from_connection(self._connection, project=self._project))


class _BatchSender:
    """Adapts a FeedbackClient to the batcher's single-attempt sender."""

    def __init__(self, client: FeedbackClient) -> None:
        self._client = client

    async def send_batch_once(self, items: list[feedback_pb2.Feedback]) -> list[feedback_pb2.Feedback | FeedbackError]:
        return await self._client._send_batch(items, self._client.connection.deadlines.batch_s)

    async def close(self) -> None:
        await self._client.close()
