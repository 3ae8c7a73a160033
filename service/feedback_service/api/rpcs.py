"""The RPC table: every method of the feedback.v1 services, read from the proto descriptors, with the
servicer method that implements it. Both transports serve this one table."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from feedback_service.api.calls import CallContext

__all__ = ["Rpc", "StreamHandler", "UnaryHandler", "rpcs_of", "services_of"]

UnaryHandler = Callable[[Any, CallContext], Awaitable[Any]]
StreamHandler = Callable[[Any, CallContext], AsyncIterator[Any]]

_NO_SIDE_EFFECTS = descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS


@dataclass(frozen=True, slots=True)
class Rpc:
    """One method: its names and message types from the proto, its implementation from a servicer."""

    service: str  # "feedback.v1.FeedbackService"
    name: str  # "CreateFeedback"
    request_type: type[Message]
    response_type: type[Message]
    no_side_effects: bool  # `option idempotency_level = NO_SIDE_EFFECTS`: Connect serves it over GET too
    unary: UnaryHandler | None  # exactly one of unary and stream is set
    stream: StreamHandler | None  # server streaming

    @property
    def path(self) -> str:
        """The path both transports route by: ``/feedback.v1.FeedbackService/CreateFeedback``."""
        return f"/{self.service}/{self.name}"


def rpcs_of(servicer: object, service: ServiceDescriptor) -> list[Rpc]:
    """The table of ``service``, each method implemented by the servicer method of the same name.

    A method the servicer lacks is an error at start-up, not an UNIMPLEMENTED at call time.
    """
    table: list[Rpc] = []
    for method in service.methods:
        if method.client_streaming:
            raise TypeError(f"{method.full_name}: client streaming is not supported")
        implementation = getattr(servicer, method.name, None)
        if implementation is None:
            raise TypeError(f"{type(servicer).__name__} does not implement {method.full_name}")
        table.append(
            Rpc(
                service=service.full_name,
                name=method.name,
                request_type=message_factory.GetMessageClass(method.input_type),
                response_type=message_factory.GetMessageClass(method.output_type),
                no_side_effects=method.GetOptions().idempotency_level == _NO_SIDE_EFFECTS,
                unary=None if method.server_streaming else implementation,
                stream=implementation if method.server_streaming else None,
            )
        )
    return table


def services_of(rpcs: Sequence[Rpc]) -> dict[str, list[Rpc]]:
    """The table grouped by service, in order."""
    grouped: dict[str, list[Rpc]] = {}
    for rpc in rpcs:
        grouped.setdefault(rpc.service, []).append(rpc)
    return grouped
