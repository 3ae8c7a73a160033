"""The ASGI application of the HTTP face: routing, CORS, health, static files and security headers.

- ``/feedback.v1.<Service>/<Method>``: every RPC over Connect and gRPC-Web (api/connect_transport.py),
  behind the CORS policy (web/cors.py): preflights answered, other origins refused unless listed.
- ``GET /healthz``: liveness, 200 while the process serves. ``GET /readyz``: readiness, 200 while the
  database is reachable and the server is not shutting down, else 503 (as gRPC health's
  ``feedback.v1.FeedbackService``).
- Everything else: the static routes of web/static.py, else 404.

Every response carries the security headers of ``_SECURITY_HEADERS`` (a route may set its own
content-security-policy and cache-control), and HSTS when the port serves TLS.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

import structlog

from feedback_service.web.cors import CorsPolicy
from feedback_service.web.static import Asset

__all__ = ["RPC_PREFIX", "ASGIApp", "HttpApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

RPC_PREFIX = "/feedback.v1."

_log = structlog.get_logger("feedback_service.http")

_SECURITY_HEADERS: Headers = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    # API answers and health are data, never a document: nothing in them may load or run anything.
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    # Answers carry a caller's data: no shared cache keeps them (static routes set their own).
    (b"cache-control", b"no-store"),
]
_HSTS = (b"strict-transport-security", b"max-age=31536000")
_JSON = (b"content-type", b"application/json")


def _with_headers(send: Send, extra: Headers) -> Send:
    """``send`` that adds ``extra`` to the response's headers, except those the response already has."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            present = {name.lower() for name, _ in headers}
            headers.extend(header for header in extra if header[0] not in present)
            message = {**message, "headers": headers}
        await send(message)

    return sending


async def _respond(send: Send, status: int, body: bytes = b"", headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _connect_error(code: str, message: str) -> bytes:
    """A body in the shape of a Connect error, so Connect clients (and people with curl) can read it."""
    return json.dumps({"code": code, "message": message}).encode()


def _request_headers(scope: Scope, *names: bytes) -> dict[str, str]:
    wanted = set(names)
    return {
        name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers", ()) if name in wanted
    }


class HttpApp:
    """The whole HTTP face as one ASGI application.

    ``rpcs``: the Connect application of every RPC; ``ready``: whether the service is ready for traffic;
    ``assets``: the static routes that have a file; ``tls``: the port serves HTTPS (adds HSTS).
    """

    def __init__(
        self,
        *,
        rpcs: ASGIApp,
        cors: CorsPolicy,
        ready: Callable[[], bool],
        assets: Mapping[str, Asset],
        tls: bool = False,
    ) -> None:
        self._rpcs = rpcs
        self._cors = cors
        self._ready = ready
        self._assets = assets
        self._security = [*_SECURITY_HEADERS, *([_HSTS] if tls else [])]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan (uvicorn runs it off) and websockets: nothing to do
            return
        path: str = scope["path"]
        if path.startswith(RPC_PREFIX):
            await self._rpc(scope, receive, send)
            return
        send = _with_headers(send, self._security)
        if path in ("/healthz", "/readyz"):
            await self._health(scope, send, readiness=path == "/readyz")
        else:
            await self._static(scope, send)

    async def _rpc(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _request_headers(scope, b"origin", b"host", b"content-type")
        extra = self._security
        origin = headers.get("origin")
        if origin is not None and not self._cors.same_origin(origin, headers.get("host", "")):
            if scope["method"] == "OPTIONS":
                await self._preflight(scope, send, origin)
                return
            if not self._cors.allows(origin):
                # Before any RPC runs, so no rpc line: this one says why the page got nothing.
                _log.info("cross_origin_refused", origin=origin, path=scope["path"])
                message = f"origin {origin} may not call this service (FEEDBACK_CORS_ORIGINS lists who may)"
                await _respond(_with_headers(send, extra), 403, _connect_error("permission_denied", message), [_JSON])
                return
            extra = [*extra, *self._cors.response_headers(origin)]
        send = _with_headers(send, extra)
        content_type = headers.get("content-type", "")
        if content_type.startswith("application/grpc") and not content_type.startswith("application/grpc-web"):
            message = "gRPC over HTTP/2 is served on the gRPC port (FEEDBACK_LISTEN); this port speaks Connect"
            await _respond(send, 415, _connect_error("unimplemented", message), [_JSON])
            return
        await self._rpcs(scope, receive, send)

    async def _preflight(self, scope: Scope, send: Send, origin: str) -> None:
        headers = _request_headers(scope, b"access-control-request-method", b"access-control-request-headers")
        refusal = self._cors.preflight_refusal(
            origin,
            headers.get("access-control-request-method", ""),
            headers.get("access-control-request-headers", ""),
        )
        send = _with_headers(send, self._security)
        if refusal is not None:
            _log.info("preflight_refused", origin=origin, path=scope["path"], reason=refusal)
            await _respond(send, 403, refusal.encode(), [(b"content-type", b"text/plain; charset=utf-8")])
            return
        await _respond(send, 204, headers=self._cors.preflight_headers(origin))

    async def _health(self, scope: Scope, send: Send, *, readiness: bool) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, headers=[(b"allow", b"GET, HEAD")])
            return
        serving = self._ready() if readiness else True
        body = b'{"status":"SERVING"}' if serving else b'{"status":"NOT_SERVING"}'
        await _respond(send, 200 if serving else 503, b"" if scope["method"] == "HEAD" else body, [_JSON])

    async def _static(self, scope: Scope, send: Send) -> None:
        asset = self._assets.get(scope["path"])
        if asset is None:
            await _respond(send, 404, _connect_error("not_found", f"no such path: {scope['path']}"), [_JSON])
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, headers=[(b"allow", b"GET, HEAD")])
            return
        if _request_headers(scope, b"if-none-match").get("if-none-match", "").encode() == asset.etag:
            await _respond(send, 304, headers=[h for h in asset.headers if h[0] != b"content-length"])
            return
        body = b"" if scope["method"] == "HEAD" else asset.body
        await _respond(send, 200, body, asset.headers)
