"""``feedback verify`` and ``feedback repair``: the derived tables compared with ``feedback`` (and corrected).

Both open the database directly, like ``migrate``: the embedded data dir of a stopped server, or a server by
URL. ``verify`` only reads; ``repair`` writes the corrections, so that a second run finds nothing.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime
from typing import Any

from feedback_client.cli.filters import TIME_HELP, parse_time
from feedback_service.config import Settings
from feedback_service.store.derived_repair import CheckReport, CheckScope
from feedback_service.store.engine import ClickHouseEngine
from feedback_service.store.feedback_store import ClickHouseFeedbackStore

EXIT_CONSISTENT = 0
EXIT_DIFFERENT = 7  # verify found differences (repair: some could not be corrected)
_SHOWN_PER_TABLE = 5


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scope")
    group.add_argument("--project", help="only this project (default: every project)")
    group.add_argument("--since", type=parse_time, metavar="TIME", help="only feedback created at or after TIME")
    group.add_argument(
        "--until", type=parse_time, metavar="TIME", help=f"only feedback created before TIME; {TIME_HELP}"
    )


def scope_of(arguments: argparse.Namespace) -> CheckScope:
    since: datetime | None = arguments.since
    until: datetime | None = arguments.until
    if since is not None and until is not None and until <= since:
        raise ValueError(f"--until ({until.isoformat()}) must be after --since ({since.isoformat()})")
    return CheckScope(project=arguments.project, start=since, end=until)


async def run_check(settings: Settings, scope: CheckScope, *, apply: bool) -> tuple[CheckReport, CheckReport | None]:
    """The report of the check (with apply: of the corrections written), and with apply a second check's."""
    engine = ClickHouseEngine(settings.engine_config())
    try:
        store = ClickHouseFeedbackStore(engine, cluster=settings.clickhouse_cluster)
        report = await store.check_derived(scope, apply=apply)
        after = await store.check_derived(scope, apply=False) if apply else None
    finally:
        await asyncio.to_thread(engine.close)
    return report, after


def _example(columns: list[str], row: list[Any]) -> str:
    return ", ".join(f"{name}={value}" for name, value in zip(columns, row, strict=True))


def print_report(command: str, report: CheckReport, after: CheckReport | None) -> int:
    """Print what was found (and done); returns the exit code."""
    print(
        f"{command}: {report.scope.describe()}: {report.candidates:,} feedback rows in scope, "
        f"{len(report.tables)} derived tables, {report.duration_s:.2f} s"
    )
    for table in report.tables:
        if table.count == 0:
            print(f"  {table.table:<20} equal")
            continue
        verb = "corrected" if report.applied else "to correct"
        print(f"  {table.table:<20} {len(table.corrections):,} {verb}, {len(table.unexplained):,} unexplained")
        for row in table.corrections[:_SHOWN_PER_TABLE]:
            print(f"    {verb}: {_example(table.columns, row)}")
        for line in table.unexplained[:_SHOWN_PER_TABLE]:
            print(f"    unexplained: {line}")
    final = after if after is not None else report
    if final.consistent:
        print(f"{command}: the derived tables equal their recomputation from feedback")
        return EXIT_CONSISTENT
    differences = sum(table.count for table in final.tables)
    advice = "" if report.applied else "; `feedback repair` with the same options corrects them"
    print(f"{command}: the derived tables differ from feedback: {differences:,} differences{advice}")
    return EXIT_DIFFERENT
