"""The state file of an export, ``<output>.cursor``: where to continue after an interruption.

It is rewritten (atomically: a temporary file, then a rename) after every chunk is durably in the
output, and holds the export's request, its format, the cursor after the last chunk written, the
number of records and the output position at that point (``bytes``, or ``parts`` for Parquet).
A finished export deletes it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feedback_client.cli.writers import Position

VERSION = 1


@dataclass(frozen=True, slots=True)
class ExportState:
    request: dict[str, Any]  # the ExportFeedbackRequest without cursor, as proto3 JSON
    file_format: str
    cursor: str
    records: int
    position: Position


class StateError(Exception):
    """The state file cannot be read."""


def state_path(output: Path) -> Path:
    return output.with_name(output.name + ".cursor")


def load_state(path: Path) -> ExportState | None:
    """The saved state, or None when there is no state file."""
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise StateError(f"cannot read {path}: {error}") from error
    try:
        if saved["version"] != VERSION:
            raise StateError(f"{path} has version {saved['version']}, this feedback reads {VERSION}")
        position = {name: int(saved[name]) for name in ("bytes", "parts") if name in saved}
        return ExportState(saved["request"], saved["format"], saved["cursor"], int(saved["records"]), position)
    except (KeyError, TypeError, ValueError) as error:
        raise StateError(f"{path} is not an export state file ({error!r} missing or wrong)") from error


def save_state(path: Path, state: ExportState) -> None:
    document = {
        "version": VERSION,
        "format": state.file_format,
        "cursor": state.cursor,
        "records": state.records,
        **state.position,
        "request": state.request,
    }
    partial = path.with_name(path.name + ".tmp")
    with partial.open("w") as file:
        json.dump(document, file, indent=1)
        file.write("\n")
        file.flush()
        os.fsync(file.fileno())
    partial.replace(path)
