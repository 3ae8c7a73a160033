"""Which browser pages may call the HTTP face: an allow-list of exact origins (FEEDBACK_CORS_ORIGINS).

A request whose ``Origin`` is the service's own (its host and port are the request's ``Host``) is
same-origin: the service's own pages, unaffected. Any other ``Origin`` is cross-origin: refused unless
it is on the list, and then it may authenticate with end-user feedback tokens only (API keys are
backend secrets; see CallRun.admit). Requests without ``Origin`` (curl, backends) are not browser
pages' and CORS does not apply to them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

__all__ = ["ALLOWED_HEADERS", "EXPOSED_HEADERS", "CorsPolicy", "parse_origin"]

ALLOWED_METHODS = ("GET", "POST")
# What Connect and gRPC-Web clients send (connectrpc.com/docs/cors), plus the credential and tracing.
ALLOWED_HEADERS = (
    "authorization",
    "content-type",
    "connect-protocol-version",
    "connect-timeout-ms",
    "connect-content-encoding",
    "connect-accept-encoding",
    "grpc-timeout",
    "grpc-encoding",
    "grpc-accept-encoding",
    "x-grpc-web",
    "x-user-agent",
    "traceparent",
    "tracestate",
)
# What they must read: gRPC-Web's status headers (also sent as trailers in the body) and compression.
EXPOSED_HEADERS = (
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "grpc-encoding",
    "connect-content-encoding",
)
PREFLIGHT_MAX_AGE_S = 7200  # the most Chromium caches a preflight
_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origin(text: str) -> str:
    """``scheme://host[:port]`` in lower case, as browsers send it; ValueError for anything else."""
    origin = text.strip().lower()
    if origin == "*":
        raise ValueError("'*' is not accepted: list the exact origins whose pages may call the service")
    parts = urlsplit(origin)
    port = parts.port  # ValueError for a bad port
    if (
        parts.scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.username is not None
        or origin != f"{parts.scheme}://{parts.netloc}"
    ):
        raise ValueError(f"an origin is scheme://host[:port] with no path, e.g. https://app.example.com, got {text!r}")
    if port == _DEFAULT_PORTS[parts.scheme]:
        origin = f"{parts.scheme}://{parts.hostname}"  # browsers leave the default port out
    return origin


def _host_and_port(netloc: str, scheme: str) -> str:
    default = _DEFAULT_PORTS.get(scheme)
    return netloc.lower().removesuffix(f":{default}") if default else netloc.lower()


class CorsPolicy:
    def __init__(self, origins: Sequence[str]) -> None:
        self._allowed = frozenset(parse_origin(origin) for origin in origins)
        self._preflight = {
            "access-control-allow-methods": ", ".join(ALLOWED_METHODS),
            "access-control-allow-headers": ", ".join(ALLOWED_HEADERS),
            "access-control-max-age": str(PREFLIGHT_MAX_AGE_S),
        }
        self._exposed = ", ".join(EXPOSED_HEADERS)

    @property
    def origins(self) -> frozenset[str]:
        return self._allowed

    def is_cross_origin(self, headers: Mapping[str, str]) -> bool:
        """Whether the request comes from a page of an origin other than the service's own."""
        origin = headers.get("origin")
        return origin is not None and not self.same_origin(origin, headers.get("host", ""))

    @staticmethod
    def same_origin(origin: str, host: str) -> bool:
        parts = urlsplit(origin.lower())
        return bool(parts.netloc) and _host_and_port(parts.netloc, parts.scheme) == _host_and_port(host, parts.scheme)

    def allows(self, origin: str) -> bool:
        return origin.lower() in self._allowed

    def response_headers(self, origin: str) -> list[tuple[bytes, bytes]]:
        """Headers of a response to an allowed cross-origin request."""
        return [
            (b"access-control-allow-origin", origin.encode()),
            (b"access-control-expose-headers", self._exposed.encode()),
            (b"vary", b"Origin"),
        ]

    def preflight_refusal(self, origin: str, method: str, requested_headers: str) -> str | None:
        """Why a preflight is refused, or None: it may go ahead."""
        if not self.allows(origin):
            return f"origin {origin} is not allowed to call this service (FEEDBACK_CORS_ORIGINS)"
        if method not in ALLOWED_METHODS:
            return f"method {method or '(none)'} is not allowed: use GET or POST"
        unknown = sorted({h.strip().lower() for h in requested_headers.split(",") if h.strip()} - set(ALLOWED_HEADERS))
        if unknown:
            return f"headers not allowed: {', '.join(unknown)}"
        return None

    def preflight_headers(self, origin: str) -> list[tuple[bytes, bytes]]:
        headers = [(name.encode(), value.encode()) for name, value in self._preflight.items()]
        headers.append((b"access-control-allow-origin", origin.encode()))
        headers.append((b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"))
        return headers
