"""Feedback key schemas in ClickHouse; implements feedback_service.domain.keys.registry.KeySchemaStore."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from feedback_service.domain.keys.schemas import KeyKind, KeySchema
from feedback_service.store.engine import ClickHouseEngine

_COLUMNS = [
    "project", "name", "kind", "description", "higher_is_better", "score_min", "score_max", "score_step",
    "labels", "archived", "create_time", "update_time", "revision",
]  # fmt: skip
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM feedback_keys FINAL"
_KIND_NAMES = {KeyKind.THUMBS: "thumbs", KeyKind.SCORE: "score", KeyKind.LABEL: "label", KeyKind.TEXT: "text"}
_KINDS = {name: kind for kind, name in _KIND_NAMES.items()}


def _schema_of(row: Sequence[Any]) -> tuple[KeySchema, int]:
    (project, name, kind, description, higher, score_min, score_max, step, labels, archived, created, updated,
     revision) = row  # fmt: skip
    schema = KeySchema(
        project=project,
        name=name,
        kind=_KINDS[kind],
        description=description,
        higher_is_better=bool(higher),
        score_min=score_min,
        score_max=score_max,
        score_step=step,
        labels=tuple(labels),
        archived=bool(archived),
        create_time=created.replace(tzinfo=UTC),
        update_time=updated.replace(tzinfo=UTC),
    )
    return schema, int(revision)


def _row_of(schema: KeySchema, revision: int) -> list[Any]:
    return [
        schema.project, schema.name, _KIND_NAMES[schema.kind], schema.description, schema.higher_is_better,
        schema.score_min, schema.score_max, schema.score_step, list(schema.labels), schema.archived,
        schema.create_time, schema.update_time, revision,
    ]  # fmt: skip


class ClickHouseKeySchemaStore:
    def __init__(self, engine: ClickHouseEngine) -> None:
        self._engine = engine

    async def find(self, project: str, name: str) -> tuple[KeySchema, int] | None:
        parameters = {"project": project, "name": name}
        rows = await self._engine.run(
            lambda client: client.query(
                f"{_SELECT} WHERE project = {{project:String}} AND name = {{name:String}}", parameters=parameters
            )
        )
        return _schema_of(rows.result_rows[0]) if rows.result_rows else None

    async def list_project(self, project: str) -> list[KeySchema]:
        rows = await self._engine.run(
            lambda client: client.query(
                f"{_SELECT} WHERE project = {{project:String}} ORDER BY name", parameters={"project": project}
            )
        )
        return [_schema_of(row)[0] for row in rows.result_rows]

    async def put(self, schema: KeySchema, revision: int) -> None:
        row = _row_of(schema, revision)
        await self._engine.run(lambda client: client.insert("feedback_keys", [row], column_names=_COLUMNS))
