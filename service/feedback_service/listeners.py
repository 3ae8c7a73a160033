"""The server's ports, taken before it writes anything.

``feedback serve`` binds the gRPC port, the HTTP face's port and the metrics port first, and only then
creates the local admin key, locks the data dir and migrates: a port in use fails the start at once,
with a message naming the address and its variable, and leaves the data dir as it was.
"""

from __future__ import annotations

import socket

import grpc

from feedback_service.config import Settings, variable_of
from feedback_service.observability.metrics import MetricsEndpoint, ServerMetrics
from feedback_service.web.serve import listen_on

__all__ = ["MAX_MESSAGE_BYTES", "Listeners"]

# gRPC messages up to 64 MiB: a 1,000-item batch of long corrections fits.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def _refused(setting: str, address: str, reason: object) -> OSError:
    return OSError(f"cannot listen on {address} ({variable_of(setting)}): {reason}")


class Listeners:
    """The gRPC server (its port added, not yet serving), the HTTP face's socket and the metrics endpoint
    (with the registry it serves) of one server. ``bind()`` takes the ports; FeedbackServer serves them."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.grpc = grpc.aio.server(
            options=[
                # Without this, Linux lets a second server bind the same port and split the traffic.
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        # A registry per server, never prometheus_client's global one: servers in one process stay apart.
        self.metrics = ServerMetrics() if settings.metrics_listen else None
        self.port = 0
        self.http: socket.socket | None = None  # None: no HTTP face (FEEDBACK_HTTP_LISTEN empty)
        self.metrics_endpoint: MetricsEndpoint | None = None
        self._bound = False

    def bind(self) -> None:
        """Take every port (once; again does nothing). OSError names the address and its variable."""
        if self._bound:
            return
        settings = self._settings
        credentials = settings.server_credentials()
        try:
            if credentials is None:
                self.port = self.grpc.add_insecure_port(settings.listen)
            else:
                self.port = self.grpc.add_secure_port(settings.listen, credentials)
        except RuntimeError:  # grpc says only "Failed to bind", and suggests a debug variable
            raise _refused("listen", settings.listen, "the port is in use, or the host is not this one") from None
        if settings.http_listen is not None:
            try:
                self.http = listen_on(settings.http_listen)
            except OSError as error:
                raise _refused("http_listen", settings.http_listen, error) from error
        if self.metrics is not None and settings.metrics_listen is not None:
            try:
                self.metrics_endpoint = MetricsEndpoint.start(settings.metrics_listen, self.metrics.registry)
            except OSError as error:
                self.close()
                raise _refused("metrics_listen", settings.metrics_listen, error.__cause__ or error) from error
        self._bound = True

    @property
    def http_port(self) -> int | None:
        return None if self.http is None else int(self.http.getsockname()[1])

    def close(self) -> None:
        """Give back the HTTP and metrics ports (a start that failed; serving servers hand them over)."""
        if self.http is not None:
            self.http.close()
            self.http = None
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.stop()
            self.metrics_endpoint = None
