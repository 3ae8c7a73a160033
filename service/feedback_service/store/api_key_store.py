"""API keys in ClickHouse (hashed); implements feedback_service.domain.access.api_keys.ApiKeyStore."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from feedback_service.domain.access.api_keys import ApiKey
from feedback_service.domain.access.auth import Scope
from feedback_service.store.engine import ClickHouseEngine

_COLUMNS = ["key_id", "project", "name", "scopes", "secret_sha256", "create_time", "revoke_time", "revision"]
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM api_keys FINAL"


def _key_of(row: Sequence[Any]) -> tuple[ApiKey, str, int]:
    key_id, project, name, scopes, secret_sha256, create_time, revoke_time, revision = row
    key = ApiKey(
        key_id=key_id,
        project=project,
        name=name,
        scopes=frozenset(Scope(s) for s in scopes),
        create_time=create_time.replace(tzinfo=UTC),
        revoke_time=revoke_time.replace(tzinfo=UTC) if revoke_time is not None else None,
    )
    return key, secret_sha256, int(revision)


def _row_of(key: ApiKey, secret_sha256: str, revision: int) -> list[Any]:
    scopes = sorted(s.value for s in key.scopes)
    return [key.key_id, key.project, key.name, scopes, secret_sha256, key.create_time, key.revoke_time, revision]


class ClickHouseApiKeyStore:
    def __init__(self, engine: ClickHouseEngine) -> None:
        self._engine = engine

    async def create_key(self, key: ApiKey, secret_sha256: str) -> None:
        row = _row_of(key, secret_sha256, 1)
        await self._engine.run(lambda client: client.insert("api_keys", [row], column_names=_COLUMNS))

    async def find_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        rows = await self._engine.run(
            lambda client: client.query(f"{_SELECT} WHERE key_id = {{key_id:String}}", parameters={"key_id": key_id})
        )
        if not rows.result_rows:
            return None
        key, secret_sha256, _ = _key_of(rows.result_rows[0])
        return key, secret_sha256

    async def list_keys(self, project: str | None) -> list[ApiKey]:
        where, parameters = ("WHERE project = {project:String}", {"project": project}) if project else ("", {})
        rows = await self._engine.run(
            lambda client: client.query(f"{_SELECT} {where} ORDER BY create_time", parameters=parameters)
        )
        return [_key_of(row)[0] for row in rows.result_rows]

    async def revoke_key(self, key_id: str, now: datetime) -> ApiKey | None:
        def revoke(client: Any) -> ApiKey | None:
            rows = client.query(f"{_SELECT} WHERE key_id = {{key_id:String}}", parameters={"key_id": key_id})
            if not rows.result_rows:
                return None
            key, secret_sha256, revision = _key_of(rows.result_rows[0])
            if key.revoked:
                return key
            revoked = dataclasses.replace(key, revoke_time=now)
            client.insert("api_keys", [_row_of(revoked, secret_sha256, revision + 1)], column_names=_COLUMNS)
            return revoked

        return await self._engine.run(revoke)
