"""Managing API keys: create (shown once), list, revoke; always within the caller's project."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from feedback_service.domain.access.api_keys import ApiKey, ApiKeyStore, Authenticator, new_key_secret, secret_sha256
from feedback_service.domain.access.auth import Principal, Scope
from feedback_service.domain.errors import NotFoundError
from feedback_service.domain.validation import ViolationCollector, check_project

MAX_KEY_NAME = 256


class ApiKeyOperations:
    def __init__(
        self,
        keys: ApiKeyStore,
        authenticator: Authenticator,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._keys = keys
        self._authenticator = authenticator
        self._clock = clock

    async def create(
        self, principal: Principal, *, project: str, name: str, scopes: Sequence[Scope]
    ) -> tuple[ApiKey, str]:
        """The new key's record and the key itself (to show once)."""
        project = principal.project_for(project)
        found = ViolationCollector()
        check_project(project, found)
        if len(name) > MAX_KEY_NAME:
            found.add("name", f"must be at most {MAX_KEY_NAME} characters")
        if not scopes:
            found.add("scopes", "must grant at least one scope: ingest, annotate, read or admin")
        found.raise_if_any()
        key_id, full_key = new_key_secret()
        key = ApiKey(key_id=key_id, project=project, name=name, scopes=frozenset(scopes), create_time=self._clock())
        await self._keys.create_key(key, secret_sha256(full_key))
        return key, full_key

    async def list(self, principal: Principal, *, project: str) -> list[ApiKey]:
        return await self._keys.list_keys(principal.project_for(project))

    async def revoke(self, principal: Principal, *, key_id: str) -> ApiKey:
        found = await self._keys.find_key(key_id)
        if found is None or (principal.project is not None and found[0].project != principal.project):
            # Keys of other projects are reported missing, so their ids cannot be probed.
            raise NotFoundError(f"no API key {key_id!r} in this project")
        revoked = await self._keys.revoke_key(key_id, self._clock())
        assert revoked is not None
        self._authenticator.forget(key_id)
        return revoked
