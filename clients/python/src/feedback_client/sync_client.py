"""A blocking client for code without an event loop: the async client, run on a private loop thread."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, TypedDict, TypeVar, Unpack

import grpc

from feedback_client import builders
from feedback_client.batching import BatchingOptions, BatchStats
from feedback_client.client import FeedbackClient
from feedback_client.connection import DEFAULT_TARGET, Deadlines
from feedback_client.console_links import ConsoleLink
from feedback_client.errors import FeedbackError
from feedback_client.loop_thread import LoopThread
from feedback_client.retry import RetryPolicy
from feedback_proto.v1 import annotation_pb2, api_keys_pb2, feedback_keys_pb2, feedback_pb2, feedback_service_pb2

Item = TypeVar("Item")
Result = TypeVar("Result")


class ClientOptions(TypedDict, total=False):
    """The keyword arguments of :class:`FeedbackClient`, accepted as they are by the sync client."""

    api_key: str | None
    feedback_token: str | None
    project: str
    tls: bool
    root_certificates: bytes | None
    client_certificate: bytes | None
    client_key: bytes | None
    credentials: grpc.ChannelCredentials | None
    deadlines: Deadlines | None
    timeout_s: float | None
    retry: RetryPolicy | None
    batching: BatchingOptions | None


class SyncFeedbackClient:
    """Blocking twin of :class:`FeedbackClient`: same arguments, calls and errors; iterators are plain.

    ``with SyncFeedbackClient("host:50051", api_key=...) as client: client.thumbs_up(trace_id)``.
    """

    def __init__(self, target: str = DEFAULT_TARGET, **options: Unpack[ClientOptions]) -> None:
        self._thread = LoopThread("feedback-client")

        async def open_client() -> FeedbackClient:
            return FeedbackClient(target, **options)

        self._client = self._thread.run(open_client())
        self._closed = False

    def __enter__(self) -> SyncFeedbackClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Deliver what ``log()`` buffered, then close the channel and the loop thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._thread.run(self._client.close())
        self._thread.stop()

    def _iterate(self, stream: AsyncIterator[Item]) -> Iterator[Item]:
        async def step() -> Item:
            return await anext(stream)

        try:
            while True:
                try:
                    yield self._thread.run(step())
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                self._thread.run(aclose())

    # FeedbackService
    def create(self, feedback: feedback_pb2.Feedback, **call: Any) -> feedback_pb2.Feedback:
        return self._thread.run(self._client.create(feedback, **call))

    def batch_create(
        self, items: Sequence[feedback_pb2.Feedback], **call: Any
    ) -> list[feedback_pb2.Feedback | FeedbackError]:
        return self._thread.run(self._client.batch_create(items, **call))

    def get(self, feedback_id: str, **call: Any) -> feedback_pb2.Feedback:
        return self._thread.run(self._client.get(feedback_id, **call))

    def list_page(
        self, request: feedback_service_pb2.ListFeedbackRequest, **call: Any
    ) -> feedback_service_pb2.ListFeedbackResponse:
        return self._thread.run(self._client.list_page(request, **call))

    def iter_feedback(
        self, request: feedback_service_pb2.ListFeedbackRequest | None = None, **call: Any
    ) -> Iterator[feedback_pb2.Feedback]:
        return self._iterate(self._client.iter_feedback(request, **call))

    def update(self, feedback: feedback_pb2.Feedback, paths: Iterable[str] = (), **call: Any) -> feedback_pb2.Feedback:
        return self._thread.run(self._client.update(feedback, paths, **call))

    def delete(self, feedback_id: str, **call: Any) -> None:
        self._thread.run(self._client.delete(feedback_id, **call))

    def stream_aggregates(
        self, request: feedback_service_pb2.StreamAggregatesRequest, **call: Any
    ) -> Iterator[feedback_service_pb2.StreamAggregatesResponse]:
        return self._iterate(self._client.stream_aggregates(request, **call))

    def export(
        self, request: feedback_service_pb2.ExportFeedbackRequest, **call: Any
    ) -> Iterator[feedback_service_pb2.ExportFeedbackResponse]:
        return self._iterate(self._client.export(request, **call))

    def compare_versions(
        self, request: feedback_service_pb2.CompareVersionsRequest, **call: Any
    ) -> feedback_service_pb2.CompareVersionsResponse:
        return self._thread.run(self._client.compare_versions(request, **call))

    def mint_feedback_token(
        self, request: feedback_service_pb2.MintFeedbackTokenRequest, **call: Any
    ) -> feedback_service_pb2.MintFeedbackTokenResponse:
        return self._thread.run(self._client.mint_feedback_token(request, **call))

    # ApiKeyService
    def create_api_key(
        self, request: api_keys_pb2.CreateApiKeyRequest, **call: Any
    ) -> api_keys_pb2.CreateApiKeyResponse:
        return self._thread.run(self._client.create_api_key(request, **call))

    def list_api_keys(
        self, request: api_keys_pb2.ListApiKeysRequest | None = None, **call: Any
    ) -> api_keys_pb2.ListApiKeysResponse:
        return self._thread.run(self._client.list_api_keys(request, **call))

    def revoke_api_key(self, key_id: str, **call: Any) -> api_keys_pb2.ApiKey:
        return self._thread.run(self._client.revoke_api_key(key_id, **call))

    # FeedbackKeyService
    def create_feedback_key(
        self, feedback_key: feedback_keys_pb2.FeedbackKey, **call: Any
    ) -> feedback_keys_pb2.FeedbackKey:
        return self._thread.run(self._client.create_feedback_key(feedback_key, **call))

    def get_feedback_key(self, name: str, **call: Any) -> feedback_keys_pb2.FeedbackKey:
        return self._thread.run(self._client.get_feedback_key(name, **call))

    def list_feedback_keys(self, **call: Any) -> list[feedback_keys_pb2.FeedbackKey]:
        return self._thread.run(self._client.list_feedback_keys(**call))

    def update_feedback_key(
        self, feedback_key: feedback_keys_pb2.FeedbackKey, paths: Iterable[str] = (), **call: Any
    ) -> feedback_keys_pb2.FeedbackKey:
        return self._thread.run(self._client.update_feedback_key(feedback_key, paths, **call))

    def archive_feedback_key(self, name: str, **call: Any) -> feedback_keys_pb2.FeedbackKey:
        return self._thread.run(self._client.archive_feedback_key(name, **call))

    # AnnotationService
    def create_queue(self, queue: annotation_pb2.Queue, **call: Any) -> annotation_pb2.Queue:
        return self._thread.run(self._client.create_queue(queue, **call))

    def add_queue_items(
        self, request: annotation_pb2.AddQueueItemsRequest, **call: Any
    ) -> annotation_pb2.AddQueueItemsResponse:
        return self._thread.run(self._client.add_queue_items(request, **call))

    def list_queues(self, **call: Any) -> list[annotation_pb2.Queue]:
        return self._thread.run(self._client.list_queues(**call))

    def get_queue_stats(self, queue_id: str, **call: Any) -> annotation_pb2.GetQueueStatsResponse:
        return self._thread.run(self._client.get_queue_stats(queue_id, **call))

    def claim_next_item(self, queue_id: str, reviewer: str, **call: Any) -> annotation_pb2.ClaimNextItemResponse | None:
        return self._thread.run(self._client.claim_next_item(queue_id, reviewer, **call))

    def submit_annotation(
        self, queue_id: str, claim_id: str, feedback: Sequence[feedback_pb2.Feedback], **call: Any
    ) -> list[feedback_pb2.Feedback]:
        return self._thread.run(self._client.submit_annotation(queue_id, claim_id, feedback, **call))

    def skip_item(self, queue_id: str, claim_id: str, **call: Any) -> None:
        self._thread.run(self._client.skip_item(queue_id, claim_id, **call))

    def get_item_context(self, queue_id: str, claim_id: str, **call: Any) -> annotation_pb2.GetItemContextResponse:
        return self._thread.run(self._client.get_item_context(queue_id, claim_id, **call))

    def create_console_link(
        self,
        *,
        project: str = "",
        reviewer: str,
        queue: str | None = None,
        read: bool = False,
        ttl: timedelta = timedelta(days=7),
        **call: Any,
    ) -> ConsoleLink:
        link = self._client.create_console_link(
            project=project, reviewer=reviewer, queue=queue, read=read, ttl=ttl, **call
        )
        return self._thread.run(link)

    def get_agreement(
        self, request: annotation_pb2.GetAgreementRequest, **call: Any
    ) -> list[annotation_pb2.KeyAgreement]:
        return self._thread.run(self._client.get_agreement(request, **call))

    # Conveniences
    def thumbs_up(
        self, trace_id: str | None = None, **options: Unpack[builders.FeedbackContext]
    ) -> feedback_pb2.Feedback:
        return self.create(builders.thumbs_up(trace_id, **options))

    def thumbs_down(
        self, trace_id: str | None = None, **options: Unpack[builders.FeedbackContext]
    ) -> feedback_pb2.Feedback:
        return self.create(builders.thumbs_down(trace_id, **options))

    def score(
        self, trace_id: str | None = None, *, key: str, value: float, **options: Unpack[builders.FeedbackContext]
    ) -> feedback_pb2.Feedback:
        return self.create(builders.score(trace_id, key=key, value=value, **options))

    def label(
        self, trace_id: str | None = None, *, key: str, value: str, **options: Unpack[builders.FeedbackContext]
    ) -> feedback_pb2.Feedback:
        return self.create(builders.label(trace_id, key=key, value=value, **options))

    def comment(
        self, trace_id: str | None = None, *, text: str, **options: Unpack[builders.FeedbackContext]
    ) -> feedback_pb2.Feedback:
        return self.create(builders.comment(trace_id, text=text, **options))

    def correct(
        self, trace_id: str | None = None, *, correction: str, **options: Unpack[builders.FeedbackContext]
    ) -> feedback_pb2.Feedback:
        return self.create(builders.correct(trace_id, correction=correction, **options))

    # Background batching: thread-safe, no event loop needed.
    def log(self, feedback: feedback_pb2.Feedback) -> str | None:
        return self._client.log(feedback)

    def flush(self, timeout_s: float | None = None) -> bool:
        return self._thread.run(self._client.flush(timeout_s))

    def batch_stats(self) -> BatchStats:
        return self._client.batch_stats()
