"""``feedback tail``: live aggregates per group, as a terminal table that updates in place, or JSON lines."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from feedback_client import FeedbackError
from feedback_client.cli.command import Command
from feedback_client.cli.connection import ConnectionOptions
from feedback_client.cli.exit_codes import ExitCode
from feedback_client.cli.filters import TIME_HELP, add_filter_arguments, aggregate_filter
from feedback_client.cli.output import machine_output, message_to_dict, source_name, time_text, write_json_line
from feedback_proto.v1 import aggregates_pb2, feedback_service_pb2

DIMENSIONS = {
    "model": aggregates_pb2.GROUP_BY_FIELD_MODEL,
    "model_version": aggregates_pb2.GROUP_BY_FIELD_MODEL_VERSION,
    "key": aggregates_pb2.GROUP_BY_FIELD_KEY,
    "source": aggregates_pb2.GROUP_BY_FIELD_SOURCE,
}
BUCKETS = {
    "minute": aggregates_pb2.TIME_BUCKET_MINUTE,
    "hour": aggregates_pb2.TIME_BUCKET_HOUR,
    "day": aggregates_pb2.TIME_BUCKET_DAY,
}
_HEADINGS = {"model": "model", "model_version": "version", "key": "key", "source": "source"}
STAT_COLUMNS = ("count", "up", "down", "positive (95% CI)", "score mean ± sd", "authors")
# What fits an 80-column terminal (the names of the group cut with an ellipsis when long); --wide adds
# the votes up and down and the number of authors, and shows the names whole.
NARROW_STAT_COLUMNS = ("count", "positive (95% CI)", "score mean ± sd")

EXAMPLES = f"""
Shows the snapshot, then follows: a group's row changes whenever feedback on it is created, updated
or deleted (Ctrl-C stops, with exit code 0). --no-follow prints the snapshot and exits. With --json
(or stdout not a terminal) prints each group as one JSON line {{"key": ..., "stats": ...}} (the score
histogram only when it holds scores), then {{"snapshot_complete": {{"group_count": N, "watermark": ...}}}},
then every update; groups carry totals, so the latest line per key is the current state. On a terminal
the table fits 80 columns (long names cut with …); --wide adds votes up and down and authors. When the
server ends the stream (UNAVAILABLE: "server shutting down" when it stops), tail says so on stderr and
reconnects until the server is back; a whole new snapshot follows, ending in another snapshot_complete
line.
Aggregate times must be whole minutes; {TIME_HELP}.

examples:
  feedback tail --project demo
  feedback tail --project demo --model support-bot --group-by model_version,key
  feedback tail --project demo --key thumbs --group-by model_version --bucket hour --since 24h
  feedback tail --project demo --model support-bot --no-follow --json | jq -c '[.key, .stats.count]'
"""


def _dimensions(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in DIMENSIONS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}: choose from {', '.join(DIMENSIONS)}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a dimension is repeated: {text!r}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_filter_arguments(parser)
    parser.add_argument(
        "--group-by",
        type=_dimensions,
        default=["model", "model_version", "key"],
        metavar="DIMS",
        help=f"comma-separated, any of {', '.join(DIMENSIONS)} (default model,model_version,key; '' = one group)",
    )
    parser.add_argument("--bucket", choices=list(BUCKETS), help="also group by time bucket (of create_time, UTC)")
    parser.add_argument("--no-follow", action="store_true", help="print the snapshot and exit")
    parser.add_argument(
        "--wide",
        action="store_true",
        help="also votes up and down and authors, names whole, for terminals wider than 80 columns",
    )


def stream_request(arguments: argparse.Namespace) -> feedback_service_pb2.StreamAggregatesRequest:
    return feedback_service_pb2.StreamAggregatesRequest(
        filter=aggregate_filter(arguments),
        group_by=[DIMENSIONS[name] for name in arguments.group_by],
        time_bucket=BUCKETS[arguments.bucket] if arguments.bucket else aggregates_pb2.TIME_BUCKET_UNSPECIFIED,
        follow=not arguments.no_follow,
    )


# ---- pure formatting ------------------------------------------------------------------------------


def positive_text(thumbs: aggregates_pb2.ThumbStats) -> str:
    if not thumbs.up + thumbs.down:
        return "—"
    return f"{thumbs.positive_rate:.1%} [{thumbs.wilson_lower:.1%}, {thumbs.wilson_upper:.1%}]"


def score_text(scores: aggregates_pb2.ScoreStats) -> str:
    if not scores.count:
        return "—"
    if scores.count == 1:
        return f"{scores.mean:.4g}"
    return f"{scores.mean:.4g} ± {scores.stddev:.3g}"


def headings(dimensions: list[str], bucketed: bool, *, wide: bool = True) -> tuple[str, ...]:
    stats = STAT_COLUMNS if wide else NARROW_STAT_COLUMNS
    return (*(_HEADINGS[name] for name in dimensions), *(("bucket (UTC)",) if bucketed else ()), *stats)


def row(
    group: aggregates_pb2.AggregateGroup, dimensions: list[str], bucketed: bool, *, wide: bool = True
) -> tuple[str, ...]:
    """The cells of one group under ``headings(dimensions, bucketed, wide=wide)``."""
    key = group.key
    values = {"model": key.model, "model_version": key.model_version, "key": key.key, "source": source_name(key.source)}
    stats = group.stats
    names = (*(values[name] for name in dimensions), *((time_text(key.bucket_start),) if bucketed else ()))
    if not wide:
        return (*names, str(stats.count), positive_text(stats.thumbs), score_text(stats.scores))
    return (
        *names,
        str(stats.count),
        str(stats.thumbs.up),
        str(stats.thumbs.down),
        positive_text(stats.thumbs),
        score_text(stats.scores),
        str(stats.distinct_authors),
    )


def _order(key: aggregates_pb2.GroupKey) -> tuple[str, str, str, int, int]:
    return (key.model, key.model_version, key.key, key.source, key.bucket_start.ToNanoseconds())


def group_json(group: aggregates_pb2.AggregateGroup) -> dict[str, Any]:
    """A group as a JSON line: {"key": ..., "stats": ...}, without the score histogram when it is empty."""
    document = message_to_dict(group)
    scores = document["stats"]["scores"]
    if not any(int(bucket.get("count", 0)) for bucket in scores.get("histogram", [])):
        scores.pop("histogram", None)
    return document


def reconnect_text(error: FeedbackError) -> str:
    return f"the stream ended ({error.code.name}: {error.message}); reconnecting"


@dataclass
class AggregateView:
    """The latest state of every group (groups carry totals, so the latest message wins).

    After a reconnection the server sends a whole new snapshot; it replaces the groups shown when it is
    complete, so that a group deleted meanwhile disappears and the table never empties while it is read.
    """

    dimensions: list[str]
    bucketed: bool
    wide: bool = False
    groups: dict[bytes, aggregates_pb2.AggregateGroup] = field(default_factory=dict)
    status: str = "reading the snapshot…"
    next_snapshot: dict[bytes, aggregates_pb2.AggregateGroup] | None = None

    def apply(self, message: feedback_service_pb2.StreamAggregatesResponse) -> None:
        event = message.WhichOneof("event")
        if event == "group":
            groups = self.groups if self.next_snapshot is None else self.next_snapshot
            identity = message.group.key.SerializeToString(deterministic=True)
            if message.group.stats.count:
                groups[identity] = message.group
            else:  # all its feedback was deleted
                groups.pop(identity, None)
        elif event == "snapshot_complete":
            if self.next_snapshot is not None:
                self.groups, self.next_snapshot = self.next_snapshot, None
            done = message.snapshot_complete
            self.status = f"snapshot of {done.group_count} groups as of {time_text(done.watermark)} UTC"
        elif event == "heartbeat":
            self.status = f"up to date as of {time_text(message.heartbeat.watermark)} UTC"

    def reconnecting(self, error: FeedbackError) -> None:
        self.next_snapshot = {}
        self.status = reconnect_text(error) + "…"

    def table(self) -> Table:
        names = len(self.dimensions) + self.bucketed
        columns = headings(self.dimensions, self.bucketed, wide=self.wide)
        groups = sorted(self.groups.values(), key=lambda g: _order(g.key))
        if self.wide:
            view = Table(*columns, header_style="bold")
            for column in view.columns[names:]:
                column.justify = "right"
            for group in groups:
                view.add_row(*map(Text, row(group, self.dimensions, self.bucketed)))  # never markup
            return view
        # No lines; the figures keep their width and the names share what is left, cut with an ellipsis.
        view = Table(*columns, header_style="bold", box=None, pad_edge=False)
        for column in view.columns[names:]:
            column.justify = "right"
            column.no_wrap = True
        for group in groups:
            cells = row(group, self.dimensions, self.bucketed, wide=False)
            view.add_row(
                *(Text(name, no_wrap=True, overflow="ellipsis") for name in cells[:names]),
                *map(Text, cells[names:]),
            )
        return view

    def render(self, following: bool) -> RenderableType:
        ending = "; following changes, Ctrl-C stops" if following else ""
        return Group(self.table(), Text(self.status + ending, style="dim"))


# ---- I/O ----------------------------------------------------------------------------------------


class _Reconnections:
    """Says on stderr when the stream breaks and when it works again (once each, not every attempt between);
    a terminal's table says it too, in its status line."""

    def __init__(self, view: AggregateView, on_change: Callable[[], None] = lambda: None) -> None:
        self._view = view
        self._on_change = on_change
        self._broken = False

    def broke(self, error: FeedbackError, delay_s: float) -> None:
        if not self._broken:
            self._broken = True
            print(f"feedback tail: {reconnect_text(error)}…", file=sys.stderr, flush=True)
        self._view.reconnecting(error)
        self._on_change()

    def received(self) -> None:
        if self._broken:
            self._broken = False
            print("feedback tail: reconnected; a new snapshot follows", file=sys.stderr, flush=True)


async def run(arguments: argparse.Namespace, connection: ConnectionOptions) -> ExitCode:
    request = stream_request(arguments)
    view = AggregateView(arguments.group_by, arguments.bucket is not None, wide=arguments.wide)
    live: Live | None = None

    def redraw() -> None:
        if live is not None:
            live.update(view.render(following=True))

    reconnections = _Reconnections(view, redraw)
    async with connection.open_client() as client:
        messages = client.stream_aggregates(request, on_reconnect=reconnections.broke)
        if machine_output(arguments):
            async for message in messages:
                reconnections.received()
                event = message.WhichOneof("event")
                if event == "group":
                    write_json_line(group_json(message.group))
                elif event == "snapshot_complete":
                    write_json_line({"snapshot_complete": message_to_dict(message.snapshot_complete)})
        elif not request.follow:
            async for message in messages:
                reconnections.received()
                view.apply(message)
            Console().print(view.render(following=False))
        else:
            with Live(view.render(following=True), console=Console(), refresh_per_second=4) as live:
                async for message in messages:
                    reconnections.received()
                    view.apply(message)
                    redraw()
    return ExitCode.OK


COMMAND = Command(
    examples=EXAMPLES,
    add_arguments=add_arguments,
    run=run,
    interrupted=ExitCode.OK,  # Ctrl-C is how tail stops
)
