"""The export file writers: JSONL, CSV and Parquet, each able to continue an interrupted file.

A writer writes chunks, and ``checkpoint()`` makes everything written so far durable and returns the
position to continue from (``{"bytes": n}``, or ``{"parts": n}`` for Parquet). Opened again at a
position, a writer drops whatever was written after it: a chunk half written when the export was
interrupted is written again, whole, exactly once.

JSONL and CSV append to the output file. A Parquet file cannot be appended to (its footer is written
last), so each chunk goes to its own file in ``<output>.parts/``; ``finish()`` copies the parts, one
row group each, into ``<output>`` (through a temporary file, replaced at once) and removes them.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import shutil
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

from feedback_client.cli.exit_codes import MissingDependencyError
from feedback_client.cli.output import message_to_dict
from feedback_client.cli.records import COLUMNS, FlatValue, flat_record
from feedback_proto.v1 import feedback_pb2

FORMATS = ("jsonl", "csv", "parquet")
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
PARQUET_EXTRA = "pip install 'feedback-client[parquet]' (pyarrow)"

Position = dict[str, int]


class ResumeError(Exception):
    """The output does not match the saved position: it was changed or removed since."""


class RecordWriter(Protocol):
    def write(self, items: Sequence[feedback_pb2.Feedback]) -> None: ...

    def checkpoint(self) -> Position:
        """Make everything written durable; the position to continue from."""
        ...

    def finish(self) -> None:
        """Complete the output file and release it."""
        ...

    def close(self) -> None:
        """Release the output unfinished (it can be continued from the last checkpoint)."""
        ...


def format_of(path: Path) -> str | None:
    """The format a file name implies, if any."""
    return EXTENSIONS.get(path.suffix.lower())


def start_position(file_format: str) -> Position:
    """The position of an empty output."""
    return {"parts": 0} if file_format == "parquet" else {"bytes": 0}


def open_writer(file_format: str, path: Path, position: Position) -> RecordWriter:
    """A writer of ``path`` that continues at ``position`` (``start_position`` starts afresh)."""
    if file_format == "jsonl":
        return AppendingWriter(path, position["bytes"], _jsonl, header=b"")
    if file_format == "csv":
        return AppendingWriter(path, position["bytes"], _csv, header=_csv_header())
    if file_format == "parquet":
        return ParquetPartsWriter(path, position["parts"])
    raise ValueError(f"unknown format {file_format!r}")


# ---- JSONL and CSV: append bytes ------------------------------------------------------------------


def _jsonl(items: Sequence[feedback_pb2.Feedback]) -> bytes:
    return "".join(json.dumps(message_to_dict(f), ensure_ascii=False) + "\n" for f in items).encode()


def csv_cell(value: FlatValue) -> str:
    """A CSV cell: empty for null, metadata as a JSON object, times as RFC 3339 in UTC."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(value)


def _csv_rows(rows: list[list[str]]) -> bytes:
    text = io.StringIO(newline="")
    csv.writer(text).writerows(rows)
    return text.getvalue().encode()


def _csv_header() -> bytes:
    return _csv_rows([list(COLUMNS)])


def _csv(items: Sequence[feedback_pb2.Feedback]) -> bytes:
    return _csv_rows([[csv_cell(value) for value in flat_record(f).values()] for f in items])


class AppendingWriter:
    """Appends encoded chunks to one file; the position is its size in bytes."""

    def __init__(
        self, path: Path, size: int, encode: Callable[[Sequence[feedback_pb2.Feedback]], bytes], header: bytes
    ) -> None:
        self._encode = encode
        if size == 0:
            self._file: IO[bytes] = path.open("wb")
            self._file.write(header)
            return
        try:
            self._file = path.open("r+b")
        except FileNotFoundError:
            raise ResumeError(f"{path} is gone") from None
        actual = self._file.seek(0, os.SEEK_END)
        if actual < size:
            self._file.close()
            raise ResumeError(f"{path} has {actual} bytes, fewer than the {size} already exported")
        self._file.truncate(size)  # drop a chunk that was only partly written
        self._file.seek(size)

    def write(self, items: Sequence[feedback_pb2.Feedback]) -> None:
        self._file.write(self._encode(items))

    def checkpoint(self) -> Position:
        self._file.flush()
        os.fsync(self._file.fileno())
        return {"bytes": self._file.tell()}

    def finish(self) -> None:
        self.checkpoint()
        self._file.close()

    def close(self) -> None:
        self._file.close()


# ---- Parquet: a file per chunk, joined at the end --------------------------------------------------


def _pyarrow() -> tuple[Any, Any]:
    # Optional (only the Parquet format needs it) and untyped: imported by name, used as Any.
    try:
        return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise MissingDependencyError(f"the parquet format needs pyarrow: {PARQUET_EXTRA}") from None


def require_parquet() -> None:
    """Raise MissingDependencyError now, before anything is exported, when pyarrow is missing."""
    _pyarrow()


def parquet_schema() -> Any:  # a pyarrow.Schema (pyarrow is optional, and untyped)
    pa, _ = _pyarrow()
    text = pa.string()
    time = pa.timestamp("us", tz="UTC")
    types = {"score": pa.float64(), "metadata": pa.map_(text, text), "revision": pa.int64()}
    types |= {"create_time": time, "update_time": time}
    return pa.schema([(name, types.get(name, text)) for name in COLUMNS])


def _parquet_row(feedback: feedback_pb2.Feedback) -> dict[str, Any]:
    record: dict[str, Any] = flat_record(feedback)
    record["metadata"] = sorted(feedback.metadata.items())  # a map column takes (key, value) pairs
    return record


class ParquetPartsWriter:
    """Writes each chunk to ``<output>.parts/NNNNNNNN.parquet``; the position is the number of parts."""

    def __init__(self, path: Path, parts: int) -> None:
        self._pa, self._pq = _pyarrow()
        self._schema = parquet_schema()
        self._path = path
        self._parts_dir = path.with_name(path.name + ".parts")
        self._count = parts
        if parts == 0:
            shutil.rmtree(self._parts_dir, ignore_errors=True)
        elif len(self._existing()) < parts:
            raise ResumeError(f"{self._parts_dir} has fewer than the {parts} parts already exported")
        self._parts_dir.mkdir(parents=True, exist_ok=True)
        for stray in self._existing()[parts:]:  # a part written after the last checkpoint
            stray.unlink()

    def _existing(self) -> list[Path]:
        return sorted(self._parts_dir.glob("*.parquet")) if self._parts_dir.is_dir() else []

    def _part(self, number: int) -> Path:
        return self._parts_dir / f"{number:08d}.parquet"

    def write(self, items: Sequence[feedback_pb2.Feedback]) -> None:
        if not items:
            return
        table = self._pa.Table.from_pylist([_parquet_row(f) for f in items], schema=self._schema)
        with self._part(self._count).open("wb") as file:
            self._pq.write_table(table, file)
            file.flush()
            os.fsync(file.fileno())
        self._count += 1

    def checkpoint(self) -> Position:
        return {"parts": self._count}

    def finish(self) -> None:
        partial = self._path.with_name(self._path.name + ".partial")
        with self._pq.ParquetWriter(partial, self._schema) as joined:
            for number in range(self._count):
                joined.write_table(self._pq.read_table(self._part(number), schema=self._schema))
        partial.replace(self._path)
        shutil.rmtree(self._parts_dir)

    def close(self) -> None:
        pass
