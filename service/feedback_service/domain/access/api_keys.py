"""API keys: their format, how their secrets are kept (hashed), and authentication of a bearer credential.

A key reads ``fbk_<key id>_<secret>``: the id finds the stored record, the
secret is checked against its SHA-256. Secrets are 256 random bits, so a fast
hash is enough (no password stretching needed) and the plain key is shown once,
at creation, and never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from feedback_client.tokens import looks_like_token
from feedback_service.domain.access.auth import ALL_SCOPES, Principal, Scope
from feedback_service.domain.access.feedback_tokens import TokenAuthority, looks_like_console_link
from feedback_service.domain.errors import UnauthenticatedError

_KEY = re.compile(r"fbk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
ADMIN_KEY_ID = "bootstrap-admin"


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    project: str
    name: str
    scopes: frozenset[Scope]
    create_time: datetime
    revoke_time: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoke_time is not None


class ApiKeyStore(Protocol):
    async def create_key(self, key: ApiKey, secret_sha256: str) -> None: ...

    async def find_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key and the SHA-256 of its secret."""
        ...

    async def list_keys(self, project: str | None) -> list[ApiKey]: ...

    async def revoke_key(self, key_id: str, now: datetime) -> ApiKey | None:
        """The revoked key, or None if there is no such key."""
        ...


def new_key_secret() -> tuple[str, str]:
    """A fresh (key id, full key text)."""
    key_id = secrets.token_hex(8)
    return key_id, f"fbk_{key_id}_{secrets.token_urlsafe(32)}"


def secret_sha256(full_key: str) -> str:
    return hashlib.sha256(full_key.encode()).hexdigest()


def parse_key_id(text: str) -> str | None:
    match = _KEY.fullmatch(text)
    return match[1] if match else None


class Authenticator:
    """Turns a bearer credential into a Principal; caches stored keys briefly.

    A key revoked through this process stops working at once; one revoked
    through another replica within ``cache_s``.
    """

    def __init__(
        self,
        keys: ApiKeyStore,
        *,
        admin_keys: Sequence[str] = (),
        tokens: TokenAuthority | None = None,
        cache_s: float = 5.0,
    ) -> None:
        self._keys = keys
        self._tokens = tokens
        self._admin_hashes = [secret_sha256(key) for key in admin_keys if key]
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, tuple[ApiKey, str] | None]] = {}

    async def authenticate(self, bearer: str | None) -> Principal:
        if not bearer:
            raise UnauthenticatedError("missing credential: send 'authorization: Bearer <API key>' metadata")
        if looks_like_token(bearer):
            if self._tokens is None:
                raise UnauthenticatedError("this server accepts no feedback tokens")
            claims = self._tokens.verify(bearer)
            return Principal(key_id=f"token:{claims.key_id}", project=claims.project, scopes=frozenset(), token=claims)
        if looks_like_console_link(bearer):
            if self._tokens is None:
                raise UnauthenticatedError("this server accepts no console links")
            link = self._tokens.verify_console_link(bearer)
            # A link acts as its reviewer: "link:<reviewer>" is the writer recorded (created_by) and logged.
            return Principal(
                key_id=f"link:{link.reviewer}",
                project=link.project,
                scopes=frozenset({Scope.READ if link.read else Scope.ANNOTATE}),
                console=link,
            )
        presented = secret_sha256(bearer)
        if any(hmac.compare_digest(presented, admin) for admin in self._admin_hashes):
            return Principal(key_id=ADMIN_KEY_ID, project=None, scopes=ALL_SCOPES)
        key_id = parse_key_id(bearer)
        if key_id is None:
            raise UnauthenticatedError("malformed credential: not an API key of this service")
        found = await self._lookup(key_id)
        if found is None or not hmac.compare_digest(presented, found[1]):
            raise UnauthenticatedError("unknown API key")
        key = found[0]
        if key.revoked:
            raise UnauthenticatedError(f"API key {key_id} has been revoked")
        return Principal(key_id=key.key_id, project=key.project, scopes=key.scopes)

    def forget(self, key_id: str) -> None:
        """Drop a cached key (after a revocation through this process)."""
        self._cache.pop(key_id, None)

    async def _lookup(self, key_id: str) -> tuple[ApiKey, str] | None:
        cached = self._cache.get(key_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self._cache_s:
            return cached[1]
        found = await self._keys.find_key(key_id)
        if len(self._cache) > 10_000:  # bound memory against floods of unknown key ids
            self._cache.clear()
        self._cache[key_id] = (now, found)
        return found
