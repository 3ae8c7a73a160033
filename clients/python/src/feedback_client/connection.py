"""Where and how to connect: target, credentials, TLS and deadlines, in one value.

Both clients, and the background batcher (which opens its own channel on its own thread), build
their channels from the same :class:`Connection`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from feedback_client.retry import RetryPolicy

DEFAULT_TARGET = "127.0.0.1:50051"
# Batches and pages may be large: accept what the server may send (64 MiB), not gRPC's 4 MiB.
_MAX_RECEIVE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Default deadline per kind of call, in seconds; None means no deadline.

    Every call also takes ``timeout_s=`` to override its default.
    """

    unary_s: float = 10.0
    # A batch of 1,000 items waits for one insert; give it more room than a single call.
    batch_s: float = 30.0
    # Export and non-following aggregate streams end by themselves; following ones run until cancelled.
    stream_s: float | None = None


@dataclass(frozen=True, slots=True)
class Connection:
    """Everything needed to open a channel to the service.

    Credentials: ``api_key`` (``fbk_...``) for backends, reviewers and jobs, or ``feedback_token``
    (``fbt1....``, from MintFeedbackToken) for code acting for one end user; never both.
    TLS: ``tls=True`` verifies the server against the system roots, or ``root_certificates`` (PEM);
    ``client_certificate`` and ``client_key`` (PEM) add mutual TLS. ``credentials`` overrides all of
    these with ready-made channel credentials.
    """

    target: str = DEFAULT_TARGET
    api_key: str | None = None
    feedback_token: str | None = None
    tls: bool = False
    root_certificates: bytes | None = None
    client_certificate: bytes | None = None
    client_key: bytes | None = None
    credentials: grpc.ChannelCredentials | None = None
    deadlines: Deadlines = field(default_factory=Deadlines)
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.api_key and self.feedback_token:
            raise ValueError("pass either api_key or feedback_token, not both")
        if (self.client_certificate is None) != (self.client_key is None):
            raise ValueError("mutual TLS needs both client_certificate and client_key")

    @property
    def secure(self) -> bool:
        return (
            self.tls
            or self.credentials is not None
            or self.root_certificates is not None
            or self.client_certificate is not None
        )

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Sent with every call. Over plain text only to a local or otherwise trusted server."""
        credential = self.api_key or self.feedback_token
        return (("authorization", f"Bearer {credential}"),) if credential else ()

    def open_channel(self) -> grpc.aio.Channel:
        """A new asyncio channel; it must be used (and closed) on the event loop that is running now."""
        options = [
            ("grpc.max_receive_message_length", _MAX_RECEIVE_BYTES),
            # After an outage, reconnect within ~2 s of the server coming back rather than gRPC's
            # default backoff of up to 120 s, so buffered feedback and resumed streams flow again soon.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        if not self.secure:
            return grpc.aio.insecure_channel(self.target, options=options)
        credentials = self.credentials or grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.client_key,
            certificate_chain=self.client_certificate,
        )
        return grpc.aio.secure_channel(self.target, credentials, options=options)
