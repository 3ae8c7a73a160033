"""``feedback list``: a project's feedback, newest first, as a table or JSON lines."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table
from rich.text import Text

from feedback_client.cli.command import Command
from feedback_client.cli.connection import ConnectionOptions
from feedback_client.cli.exit_codes import ExitCode
from feedback_client.cli.filters import TIME_HELP, add_time_arguments, set_time_range
from feedback_client.cli.output import (
    SOURCE_NAMES,
    machine_output,
    message_to_dict,
    shortened,
    source_name,
    time_text,
    value_text,
    write_json_line,
)
from feedback_proto.v1 import feedback_pb2, feedback_service_pb2

_MAX_PAGE_SIZE = 1000
WIDE_COLUMNS = ("time (UTC)", "feedback id", "trace", "model@version", "key", "value", "source", "author", "comment")
# What fits an 80-column terminal; --wide shows every column.
COLUMNS = ("time (UTC)", "trace", "model@version", "key", "value", "comment")
_COMMENT_WIDTH = 40
# Without --wide: the time to the minute, and at most this many characters of the trace id, model@version,
# key and value, so that a comment still fits on an 80-column line.
_MINUTE = len("2026-11-26 14:12")
_SHORT_TRACE = 9
_SHORT_MODEL = 20
_SHORT_KEY = 14
_SHORT_VALUE = 12

EXAMPLES = f"""
Newest first. On a terminal a table that fits 80 columns: time (to the minute), trace id, model@version,
key, value and comment (or → the correction), shortened; --wide shows every column, whole.
--json (or stdout not a terminal) prints every field, one JSON object per line. {TIME_HELP}.

examples:
  feedback list --project demo
  feedback list --project demo --model support-bot --model-version v8 --key thumbs --since 2h
  feedback list --project demo --source reviewer --wide
  feedback list --project demo --trace-id 4bf92f3577b34da6a3ce929d0e0e4736 --json
  feedback list --project demo --source reviewer --since 2026-11-01 --until 2026-11-08 --limit 0 --json > week.jsonl
"""


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (all) or more, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters")
    group.add_argument("--trace-id", default="", help="only feedback on this trace")
    group.add_argument("--model", default="", help="only this model")
    group.add_argument("--model-version", default="", help="only this model version")
    group.add_argument("--key", default="", help="only this feedback key")
    group.add_argument("--source", choices=sorted(SOURCE_NAMES), help="only this source")
    group.add_argument("--author", default="", help="only this author")
    add_time_arguments(group)
    parser.add_argument("--limit", type=_limit, default=50, metavar="N", help="show at most N (default 50; 0: all)")
    parser.add_argument(
        "--wide",
        action="store_true",
        help="every column (feedback id, whole trace id, source, author), for terminals wider than 80 columns",
    )


def list_request(arguments: argparse.Namespace) -> feedback_service_pb2.ListFeedbackRequest:
    limit: int = arguments.limit
    request = feedback_service_pb2.ListFeedbackRequest(
        trace_id=arguments.trace_id,
        model=arguments.model,
        model_version=arguments.model_version,
        key=arguments.key,
        source=SOURCE_NAMES[arguments.source] if arguments.source else feedback_pb2.SOURCE_UNSPECIFIED,
        author=arguments.author,
        # One more than the limit, to tell whether more exist.
        page_size=min(limit + 1, _MAX_PAGE_SIZE) if limit else _MAX_PAGE_SIZE,
    )
    set_time_range(request, arguments)
    return request


def row(feedback: feedback_pb2.Feedback, *, wide: bool = False) -> tuple[str, ...]:
    """One table row: the columns of WIDE_COLUMNS, or of COLUMNS (shorter: time to the minute, trace id,
    model and key cut, the comment on one line)."""
    model = "@".join(part for part in (feedback.model, feedback.model_version) if part)
    if not wide:
        remark = feedback.comment or (f"→ {feedback.correction}" if feedback.correction else "")
        return (
            time_text(feedback.create_time)[:_MINUTE],
            shortened(feedback.trace_id, _SHORT_TRACE),
            shortened(model, _SHORT_MODEL),
            shortened(feedback.key, _SHORT_KEY),
            shortened(value_text(feedback), _SHORT_VALUE),
            " ".join(remark.split()),  # one line: the table cuts it to the width left
        )
    remark = feedback.comment or (f"[correction] {feedback.correction}" if feedback.correction else "")
    return (
        time_text(feedback.create_time),
        feedback.feedback_id,
        feedback.trace_id,
        model,
        feedback.key,
        value_text(feedback),
        source_name(feedback.source),
        feedback.author,
        shortened(remark, _COMMENT_WIDTH),
    )


def table(items: list[feedback_pb2.Feedback], *, wide: bool = False) -> Table:
    if wide:
        view = Table(*WIDE_COLUMNS, header_style="bold")
        view.columns[0].no_wrap = True
        for identifier in view.columns[1:3]:  # ids wrap rather than lose characters: they are copied
            identifier.overflow = "fold"
        for feedback in items:
            view.add_row(*map(Text, row(feedback, wide=True)))  # Text: shown as they are, never as markup
        return view
    # No lines; every column keeps its width and the comment takes what is left, cut with an ellipsis.
    view = Table(*COLUMNS, header_style="bold", box=None, pad_edge=False)
    for column in view.columns[:-1]:
        column.no_wrap = True
    for feedback in items:
        *cells, remark = row(feedback)
        view.add_row(*map(Text, cells), Text(remark, no_wrap=True, overflow="ellipsis"))
    return view


async def run(arguments: argparse.Namespace, connection: ConnectionOptions) -> ExitCode:
    request = list_request(arguments)
    limit: int = arguments.limit
    machine = machine_output(arguments)
    shown: list[feedback_pb2.Feedback] = []  # for the table; JSON lines go out as they come
    count = 0
    more = False
    async with connection.open_client() as client:
        async for feedback in client.iter_feedback(request):
            if limit and count == limit:
                more = True
                break
            count += 1
            if machine:
                write_json_line(message_to_dict(feedback))
            else:
                shown.append(feedback)
    if not machine:
        console = Console()
        if shown:
            console.print(table(shown, wide=arguments.wide))
        ending = "; more match (--limit 0 shows all)" if more else ""
        console.print(f"{count} shown{ending}", style="dim", highlight=False)
    return ExitCode.OK


COMMAND = Command(
    examples=EXAMPLES,
    add_arguments=add_arguments,
    run=run,
)
