"""Static files of the HTTP face, from ``feedback_service/web/static/`` (shipped in the package).

``ROUTES`` is the one table of what is served: a URL path, the file under the directory that serves
it, its content type and its caching. A route whose file is not there is not served (404), so the
directory can fill in later: the browser SDK bundle (``feedback-web.js``) and the reviewer console
(``console/``: index.html at ``/``, its script and style sheet under ``/console/``), both built from
clients/js and committed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["IMMUTABLE", "ROUTES", "STATIC_DIR", "Asset", "Route", "load_assets"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"  # cached, but checked (ETag) before each use: a new release shows at once

# Pages of the console: scripts, styles and connections only from the service itself; no inline script,
# no inline style (nor style attributes), and every DOM sink that parses HTML refused (trusted types
# required, no policy may be made), so text the console shows can never turn into markup or script.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
    "require-trusted-types-for 'script'; trusted-types 'none'"
)


@dataclass(frozen=True, slots=True)
class Route:
    path: str  # URL path
    file: str  # relative to the static directory
    content_type: str
    cache_control: str
    # Loaded by pages of any origin (<script src>, import): public, credential-free, so readable by all.
    cross_origin: bool = False


ROUTES = (
    Route("/sdk/feedback-web.js", "feedback-web.js", "text/javascript; charset=utf-8", IMMUTABLE, cross_origin=True),
    # The reviewer console and dashboard; its page routes live in the URL fragment, so / is its only page.
    Route("/", "console/index.html", "text/html; charset=utf-8", REVALIDATE),
    Route("/console/console.js", "console/console.js", "text/javascript; charset=utf-8", REVALIDATE),
    Route("/console/console.css", "console/console.css", "text/css; charset=utf-8", REVALIDATE),
)


@dataclass(frozen=True, slots=True)
class Asset:
    """A file to serve, read once at start-up, with its response headers."""

    body: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    etag: bytes


def _asset(route: Route, body: bytes) -> Asset:
    etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
    headers = [
        (b"content-type", route.content_type.encode()),
        (b"cache-control", route.cache_control.encode()),
        (b"etag", etag),
        (b"content-length", str(len(body)).encode()),
    ]
    if route.content_type.startswith("text/html"):
        headers.append((b"content-security-policy", PAGE_CSP.encode()))
    if route.cross_origin:
        headers.append((b"access-control-allow-origin", b"*"))
        headers.append((b"cross-origin-resource-policy", b"cross-origin"))
    return Asset(body, tuple(headers), etag)


def load_assets(directory: Path = STATIC_DIR) -> Mapping[str, Asset]:
    """The routes whose file exists in ``directory``, by URL path."""
    assets: dict[str, Asset] = {}
    for route in ROUTES:
        file = directory / route.file
        if file.is_file():
            assets[route.path] = _asset(route, file.read_bytes())
    return assets
