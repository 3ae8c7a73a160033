"""The HTTP face on uvicorn, inside the gRPC server's process and event loop."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from feedback_service.web.app import ASGIApp

__all__ = ["HttpServer", "TlsFiles", "listen_on"]


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The gRPC port's TLS files, which the HTTP port serves too."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


class _EmbeddedServer(uvicorn.Server):
    """uvicorn in an event loop it does not own."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # SIGTERM and SIGINT stay with the service (server.serve), which stops both ports in order.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.listening.set()


def listen_on(address: str) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one), for :class:`HttpServer`; OSError (the
    socket's own, e.g. "Address already in use") when the port is taken or the host is not this one's."""
    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    family, kind, protocol, _, where = socket.getaddrinfo(
        host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    listener = socket.socket(family, kind, protocol)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(where)
        listener.listen(2048)
    except OSError:
        listener.close()
        raise
    listener.setblocking(False)
    return listener


class HttpServer:
    """``await start()`` serves ``app`` on ``listener`` (a socket from :func:`listen_on`, bound before
    anything else starts so that a port in use fails first; without one, on ``address``), ``await
    stop(grace_s)`` lets requests in flight finish (up to the grace, then cancels them) and closes the port."""

    def __init__(
        self, app: ASGIApp, *, address: str, listener: socket.socket | None = None, tls: TlsFiles | None = None
    ) -> None:
        self._app = app
        self._address = address
        self._tls = tls
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._listener = listener
        self.port = 0 if listener is None else listener.getsockname()[1]

    async def start(self) -> int:
        """Serve; the port (the address may say 0)."""
        listener = self._listener
        if listener is None:
            try:
                listener = self._listener = listen_on(self._address)
            except OSError as error:
                raise OSError(f"cannot listen on {self._address}: {error}") from error
            self.port = listener.getsockname()[1]
        tls = self._tls
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_config=None,  # the service's logging set-up applies (uvicorn logs only warnings and errors)
            access_log=False,  # every RPC has its own log line
            server_header=False,
            ws="none",
            http="auto",  # httptools when installed, else h11
            ssl_certfile=None if tls is None else tls.cert_file,
            ssl_keyfile=None if tls is None else tls.key_file,
            ssl_ca_certs=None if tls is None or tls.client_ca_file is None else str(tls.client_ca_file),
            ssl_cert_reqs=ssl.CERT_NONE if tls is None or tls.client_ca_file is None else ssl.CERT_REQUIRED,
        )
        self._server = server = _EmbeddedServer(config)
        self._task = task = asyncio.create_task(server.serve(sockets=[listener]), name="http-face")
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():  # it failed to start: say why
            listening.cancel()
            task.result()
            raise OSError(f"the HTTP face on {self._address} stopped at start")
        return self.port

    async def stop(self, grace_s: float) -> None:
        server, task = self._server, self._task
        if server is None or task is None:
            return
        server.config.timeout_graceful_shutdown = math.ceil(grace_s)
        server.should_exit = True
        await task
