"""A small asyncio client of feedback.v1.FeedbackService."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from feedback_client.errors import FeedbackError
from feedback_proto.v1 import feedback_pb2, feedback_service_pb2, feedback_service_pb2_grpc

Response = TypeVar("Response")


class FeedbackClient:
    """Async client. Use as ``async with FeedbackClient("localhost:50051", api_key=...) as client: ...``.

    Every call raises :class:`FeedbackError` instead of raw gRPC errors.
    """

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        # Batches and pages may be large: accept what the server may send (64 MiB), not gRPC's 4 MiB.
        options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        self._channel = (
            grpc.aio.secure_channel(target, credentials, options=options)
            if credentials is not None
            else grpc.aio.insecure_channel(target, options=options)
        )
        self._stub = feedback_service_pb2_grpc.FeedbackServiceStub(self._channel)
        self._timeout_s = timeout_s
        # Sent with every call; over a plain-text channel only to a local or trusted server.
        self._metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {api_key}"),) if api_key else ()

    async def __aenter__(self) -> FeedbackClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method: Callable[..., Awaitable[Response]], request: object) -> Response:
        try:
            return await method(request, timeout=self._timeout_s, metadata=self._metadata)
        except grpc.aio.AioRpcError as error:
            raise FeedbackError.from_rpc_error(error) from None

    async def create(self, feedback: feedback_pb2.Feedback) -> feedback_pb2.Feedback:
        """Store feedback; returns it as stored. Set ``feedback_id`` to make retries safe."""
        request = feedback_service_pb2.CreateFeedbackRequest(feedback=feedback)
        response: feedback_service_pb2.CreateFeedbackResponse = await self._call(self._stub.CreateFeedback, request)
        return response.feedback

    async def batch_create(self, items: Sequence[feedback_pb2.Feedback]) -> list[feedback_pb2.Feedback | FeedbackError]:
        """Store up to 1,000 items; one result per item: the stored feedback or its error."""
        request = feedback_service_pb2.BatchCreateFeedbackRequest(feedback=items)
        response = await self._call(self._stub.BatchCreateFeedback, request)
        return [
            result.feedback if result.HasField("feedback") else FeedbackError.from_status_proto(result.error)
            for result in response.results
        ]

    async def get(self, project: str, feedback_id: str) -> feedback_pb2.Feedback:
        request = feedback_service_pb2.GetFeedbackRequest(project=project, feedback_id=feedback_id)
        response: feedback_service_pb2.GetFeedbackResponse = await self._call(self._stub.GetFeedback, request)
        return response.feedback

    async def list_page(
        self, request: feedback_service_pb2.ListFeedbackRequest
    ) -> feedback_service_pb2.ListFeedbackResponse:
        return await self._call(self._stub.ListFeedback, request)

    async def iter_feedback(
        self, request: feedback_service_pb2.ListFeedbackRequest
    ) -> AsyncIterator[feedback_pb2.Feedback]:
        """Every matching feedback, newest first, fetching pages as needed."""
        page_request = feedback_service_pb2.ListFeedbackRequest()
        page_request.CopyFrom(request)
        while True:
            page = await self.list_page(page_request)
            for feedback in page.feedback:
                yield feedback
            if not page.next_page_token:
                return
            page_request.page_token = page.next_page_token

    async def update(self, feedback: feedback_pb2.Feedback, paths: Iterable[str] = ()) -> feedback_pb2.Feedback:
        """Change the fields named in ``paths`` (all set fields when empty); returns the new revision."""
        request = feedback_service_pb2.UpdateFeedbackRequest(
            feedback=feedback, update_mask=FieldMask(paths=list(paths))
        )
        response: feedback_service_pb2.UpdateFeedbackResponse = await self._call(self._stub.UpdateFeedback, request)
        return response.feedback

    async def stream_aggregates(
        self, request: feedback_service_pb2.StreamAggregatesRequest, *, timeout_s: float | None = None
    ) -> AsyncIterator[feedback_service_pb2.StreamAggregatesResponse]:
        """Aggregates per group: the snapshot, a SnapshotComplete marker, then (with follow) updates.

        Following streams have no deadline unless ``timeout_s`` is given.
        """
        async for message in self._stream(self._stub.StreamAggregates, request, timeout_s):
            yield message

    async def export(
        self, request: feedback_service_pb2.ExportFeedbackRequest, *, timeout_s: float | None = None
    ) -> AsyncIterator[feedback_service_pb2.ExportFeedbackResponse]:
        """Chunks of raw feedback, each with the cursor to resume after it."""
        async for message in self._stream(self._stub.ExportFeedback, request, timeout_s):
            yield message

    async def _stream(self, method: Callable[..., Any], request: object, timeout_s: float | None) -> AsyncIterator[Any]:
        """A server stream with FeedbackError instead of raw gRPC errors; cancelled when the caller stops."""
        call = method(request, timeout=timeout_s, metadata=self._metadata)
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as error:
            raise FeedbackError.from_rpc_error(error) from None
        finally:
            call.cancel()

    async def compare_versions(
        self, request: feedback_service_pb2.CompareVersionsRequest
    ) -> feedback_service_pb2.CompareVersionsResponse:
        response: feedback_service_pb2.CompareVersionsResponse = await self._call(self._stub.CompareVersions, request)
        return response

    async def delete(self, project: str, feedback_id: str) -> None:
        request = feedback_service_pb2.DeleteFeedbackRequest(project=project, feedback_id=feedback_id)
        await self._call(self._stub.DeleteFeedback, request)
