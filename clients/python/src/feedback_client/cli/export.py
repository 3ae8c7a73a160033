"""``feedback export``: raw feedback to a JSONL, CSV or Parquet file, resumable after an interruption."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from google.protobuf.json_format import ParseDict, ParseError
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from feedback_client import FeedbackError
from feedback_client.cli.command import Command
from feedback_client.cli.connection import ConnectionOptions
from feedback_client.cli.exit_codes import ExitCode, UsageError, exit_code_for
from feedback_client.cli.export_state import ExportState, StateError, load_state, save_state, state_path
from feedback_client.cli.filters import TIME_HELP, add_filter_arguments, aggregate_filter
from feedback_client.cli.output import machine_output, message_to_dict, write_json_line
from feedback_client.cli.writers import (
    EXTENSIONS,
    FORMATS,
    ResumeError,
    format_of,
    open_writer,
    require_parquet,
    start_position,
)
from feedback_proto.v1 import feedback_service_pb2

_MAX_CHUNK_SIZE = 10_000

EXAMPLES = f"""
Exports in a stable order (create_time, then feedback_id). After each chunk is durably written,
<FILE>.cursor records how far the export got; --resume continues an interrupted export (Ctrl-C, a
lost connection, a killed job) from there, with every record exactly once, and a finished export
removes <FILE>.cursor; --resume without a <FILE>.cursor is an error. Without --resume, FILE is written
afresh.

Formats (--format, else from the extension {", ".join(EXTENSIONS)}):
  jsonl    one feedback per line, proto3 JSON as `feedback list --json` prints it
  csv      a header, then one row per feedback: {"thumb (up/down), score, label"} columns, metadata as a
           JSON object, times in UTC
  parquet  the same columns, typed (score double, metadata map, times timestamp[us, UTC]), a row
           group per chunk; needs pyarrow: pip install 'feedback-client[parquet]'. Chunks are kept
           in <FILE>.parts/ until the export finishes, then joined into FILE.
A progress bar shows on a terminal; at the end a summary (records, seconds) is printed, as JSON
with --json or when stdout is not a terminal. {TIME_HELP}.

examples:
  feedback export --project demo --output feedback.jsonl
  feedback export --project demo --model support-bot --model-version v8 --only-with-correction \\
      --output corrections.csv
  feedback export --project demo --since 2026-11-01 --until 2026-12-01 --output november.parquet
  feedback export --project demo --output feedback.jsonl --resume      # after an interruption
"""


def _chunk_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= _MAX_CHUNK_SIZE:
        raise argparse.ArgumentTypeError(f"must be 1 to {_MAX_CHUNK_SIZE:,}, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", type=Path, required=True, metavar="FILE", help="the file to write")
    parser.add_argument("--format", choices=FORMATS, help="default: from the extension of FILE")
    parser.add_argument("--resume", action="store_true", help="continue the export recorded in FILE.cursor")
    add_filter_arguments(parser)
    parser.add_argument("--only-with-correction", action="store_true", help="only feedback with a correction")
    parser.add_argument("--only-with-comment", action="store_true", help="only feedback with a comment")
    parser.add_argument(
        "--chunk-size", type=_chunk_size, metavar="N", help="feedback per chunk and checkpoint (default 1,000)"
    )


def file_format(arguments: argparse.Namespace) -> str:
    chosen: str | None = arguments.format or format_of(arguments.output)
    if chosen is None:
        raise UsageError(f"cannot tell the format of {arguments.output}: give --format {' or '.join(FORMATS)}")
    return chosen


def export_request(arguments: argparse.Namespace, project: str) -> feedback_service_pb2.ExportFeedbackRequest:
    request = feedback_service_pb2.ExportFeedbackRequest(
        filter=aggregate_filter(arguments),
        only_with_correction=arguments.only_with_correction,
        only_with_comment=arguments.only_with_comment,
        chunk_size=arguments.chunk_size or 0,
    )
    request.filter.project = project
    return request


def _what(request: feedback_service_pb2.ExportFeedbackRequest) -> feedback_service_pb2.ExportFeedbackRequest:
    """What a request exports: the request without its cursor and chunk size, which do not change that."""
    what = feedback_service_pb2.ExportFeedbackRequest()
    what.CopyFrom(request)
    what.ClearField("cursor")
    what.ClearField("chunk_size")
    return what


def _saved_what(state: ExportState) -> feedback_service_pb2.ExportFeedbackRequest | None:
    try:
        return ParseDict(state.request, feedback_service_pb2.ExportFeedbackRequest())
    except ParseError:
        return None


def starting_state(
    arguments: argparse.Namespace, request: feedback_service_pb2.ExportFeedbackRequest, chosen_format: str
) -> ExportState:
    """Where this run starts: the saved state with --resume, else the beginning."""
    fresh = ExportState(
        message_to_dict(_what(request)), chosen_format, cursor="", records=0, position=start_position(chosen_format)
    )
    if not arguments.resume:
        return fresh
    output: Path = arguments.output
    try:
        saved = load_state(state_path(output))
    except StateError as error:
        raise UsageError(f"--resume: {error}") from error
    if saved is None:  # never a silent full export: the user expected to continue one
        if output.exists():
            raise UsageError(
                f"--resume: there is no {state_path(output).name}: {output} is complete (or was not written "
                "by feedback export); export without --resume to write it again"
            )
        raise UsageError(
            f"--resume: there is no interrupted export of {output} to continue (no {state_path(output).name}); "
            "export without --resume to start one"
        )
    if saved.file_format != chosen_format:
        raise UsageError(f"--resume: the interrupted export wrote {saved.file_format}, not {chosen_format}")
    if _saved_what(saved) != _what(request):
        raise UsageError(
            "--resume: the filters differ from those of the interrupted export; they were "
            f"{saved.request} (see {state_path(output)})"
        )
    return saved


def _progress(output: Path) -> Progress:
    console = Console(stderr=True)
    return Progress(
        SpinnerColumn(),
        TextColumn("exporting to " + escape(str(output)).replace("{", "{{").replace("}", "}}")),
        TextColumn("{task.completed:,} records"),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=True,
    )


@contextlib.contextmanager
def _writing(output: Path) -> Iterator[None]:
    """A failure to write the output, its parts or its cursor file, said about the output the user named."""
    try:
        yield
    except OSError as error:
        if not output.parent.is_dir():
            reason = f"the directory {output.parent} does not exist"
        else:
            reason = error.strerror or str(error)
        raise OSError(f"cannot write {output}: {reason}") from error


async def run(arguments: argparse.Namespace, connection: ConnectionOptions) -> ExitCode:
    chosen_format = file_format(arguments)
    if chosen_format == "parquet":
        require_parquet()
    output: Path = arguments.output
    request = export_request(arguments, connection.project)
    state = starting_state(arguments, request, chosen_format)
    request.cursor = state.cursor
    resumed_at = state.records
    cursor_file = state_path(output)
    try:
        with _writing(output):
            writer = open_writer(chosen_format, output, state.position)
            save_state(cursor_file, state)
    except ResumeError as error:
        raise UsageError(f"--resume: {error}; export without --resume to start again") from error
    started = time.monotonic()
    finished = False
    try:
        with _progress(output) as progress:
            task = progress.add_task("export", total=None, completed=state.records)
            async with connection.open_client() as client:
                async for chunk in client.export(request, on_reconnect=_say_reconnecting):
                    with _writing(output):
                        writer.write(chunk.feedback)
                        position = writer.checkpoint()
                        records = state.records + len(chunk.feedback)
                        cursor = chunk.cursor or state.cursor
                        state = ExportState(state.request, chosen_format, cursor, records, position)
                        save_state(cursor_file, state)
                    progress.update(task, completed=records)
        with _writing(output):
            writer.finish()
        finished = True
    except asyncio.CancelledError:  # Ctrl-C
        print(f"feedback export: interrupted after {state.records:,} records; {_resume_hint(output)}", file=sys.stderr)
        raise
    except (FeedbackError, OSError) as error:
        if isinstance(error, OSError) or exit_code_for(error.code) == ExitCode.UNAVAILABLE:  # worth trying again
            error.add_note(f"{state.records:,} records exported; {_resume_hint(output)}")
        raise
    finally:
        if not finished:
            writer.close()
    cursor_file.unlink()
    _summarise(arguments, state, resumed_at, time.monotonic() - started)
    return ExitCode.OK


def _summarise(arguments: argparse.Namespace, state: ExportState, resumed_at: int, seconds: float) -> None:
    output: Path = arguments.output
    if machine_output(arguments):
        summary = {
            "output": str(output),
            "format": state.file_format,
            "records": state.records,
            "records_this_run": state.records - resumed_at,
            "seconds": round(seconds, 3),
        }
        write_json_line(summary)
    else:
        resumed = f" (continued after {resumed_at:,})" if resumed_at else ""
        print(f"exported {state.records:,} records{resumed} to {output} in {seconds:.1f} s")


def _say_reconnecting(error: FeedbackError, delay_s: float) -> None:
    reason = f"{error.code.name}: {error.message}"
    print(f"feedback export: the stream broke ({reason}); continuing at the cursor in {delay_s:.1f} s", file=sys.stderr)


def _resume_hint(output: Path) -> str:
    return f"{state_path(output).name} keeps the place: run the same command with --resume to continue"


COMMAND = Command(
    examples=EXAMPLES,
    add_arguments=add_arguments,
    run=run,
)
