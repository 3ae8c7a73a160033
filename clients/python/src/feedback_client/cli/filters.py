"""The filter options shared by tail, export and compare, and the times they take."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta
from typing import Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from feedback_client.cli.exit_codes import UsageError
from feedback_client.cli.output import SOURCE_NAMES
from feedback_proto.v1 import aggregates_pb2

_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

TIME_HELP = (
    "times are ISO-8601 (2026-11-26T14:00:00Z; no offset means UTC) or a duration ago such as 30m, 2h, 7d "
    "(rounded down to the minute)"
)


def parse_duration(text: str) -> timedelta:
    """A duration such as ``30m``, ``12h`` or ``7d`` (s, m, h, d), for argparse."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or not int(match.group(1)):
        raise argparse.ArgumentTypeError(f"not a duration like 30m, 12h, 7d: {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """An aware UTC datetime from ISO-8601, or from a duration ago (``15m``, ``2h``, ``7d``) in whole minutes."""
    relative = _DURATION.fullmatch(text.strip())
    if relative:
        ago = timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
        return ((now or datetime.now(UTC)) - ago).replace(second=0, microsecond=0)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time or a duration like 30m, 2h, 7d: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def add_time_arguments(parser: argparse._ActionsContainer) -> None:
    parser.add_argument("--since", type=parse_time, metavar="TIME", help="only feedback created at or after TIME")
    parser.add_argument("--until", type=parse_time, metavar="TIME", help="only feedback created before TIME")


class _TimeRanged(Protocol):
    """A request with a create-time range (ListFeedback, CompareVersions, AggregateFilter)."""

    @property
    def start_time(self) -> Timestamp: ...

    @property
    def end_time(self) -> Timestamp: ...


def set_time_range(message: _TimeRanged, arguments: argparse.Namespace) -> None:
    """Copy --since/--until into ``message``; a usage error when the range is empty."""
    since: datetime | None = arguments.since
    until: datetime | None = arguments.until
    if since is not None and until is not None and until <= since:
        raise UsageError(f"--until ({until.isoformat()}) must be after --since ({since.isoformat()})")
    if since is not None:
        message.start_time.CopyFrom(timestamp(since))
    if until is not None:
        message.end_time.CopyFrom(timestamp(until))


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --model-version, --key, --source (each repeatable: any of the values), --since, --until."""
    group = parser.add_argument_group("filters (a repeated option matches any of its values)")
    group.add_argument("--model", action="append", default=[], dest="models", metavar="MODEL", help="only this model")
    group.add_argument(
        "--model-version",
        action="append",
        default=[],
        dest="model_versions",
        metavar="VERSION",
        help="only this version",
    )
    group.add_argument("--key", action="append", default=[], dest="keys", metavar="KEY", help="only this feedback key")
    group.add_argument(
        "--source", action="append", default=[], dest="sources", choices=sorted(SOURCE_NAMES), help="only this source"
    )
    add_time_arguments(group)


def aggregate_filter(arguments: argparse.Namespace) -> aggregates_pb2.AggregateFilter:
    """The AggregateFilter of the filter options; the project comes from the client (or the key)."""
    selected = aggregates_pb2.AggregateFilter(
        models=arguments.models,
        model_versions=arguments.model_versions,
        keys=arguments.keys,
        sources=[SOURCE_NAMES[name] for name in arguments.sources],
    )
    set_time_range(selected, arguments)
    return selected
