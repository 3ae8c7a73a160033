"""``feedback compare``: two versions of a model side by side, key by key, with a significance test."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from feedback_client.cli.command import Command
from feedback_client.cli.connection import ConnectionOptions
from feedback_client.cli.exit_codes import ExitCode
from feedback_client.cli.filters import TIME_HELP, add_time_arguments, set_time_range
from feedback_client.cli.output import SOURCE_NAMES, machine_output, message_to_dict, write_json_line
from feedback_proto.v1 import aggregates_pb2, feedback_service_pb2

SIGNIFICANCE = 0.05
_STATISTIC_NAMES = {"two_proportion_z": "z", "welch_t": "t"}

EXAMPLES = f"""
Per key: the thumbs positive rate (two-proportion z-test) or, for keys with scores and no thumbs, the
score mean (Welch's t-test) of A and B, B minus A, the two-sided p-value (marked * below
{SIGNIFICANCE}) and the number of votes or scores on each side; a key without votes or scores on a
side shows "no data" instead of a test. On a terminal the table fits 80 columns: A and B are named
above it, and the test is its statistic (z: two-proportion z-test, t: Welch's t-test); --wide names the
test and the versions in the table. When a version has no matching feedback at all, compare says
"no data for <version>" and exits 8. --json prints the CompareVersionsResponse (and still exits 8
then). Aggregate times must be whole minutes; {TIME_HELP}.

examples:
  feedback compare --project demo --model support-bot --version-a v7 --version-b v8
  feedback compare --project demo --model support-bot --version-a v7 --version-b v8 --key thumbs \\
      --source user --since 7d
  feedback compare --project demo --model support-bot --version-a v7 --version-b v8 --json \\
      | jq '.comparisons[] | {{key, p_value}}'
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="the model whose versions are compared")
    parser.add_argument("--version-a", required=True, metavar="A", help="the baseline version")
    parser.add_argument("--version-b", required=True, metavar="B", help="the candidate version")
    group = parser.add_argument_group("filters (a repeated option matches any of its values)")
    group.add_argument(
        "--key", action="append", default=[], dest="keys", metavar="KEY", help="only this key (default: every key)"
    )
    group.add_argument(
        "--source", action="append", default=[], dest="sources", choices=sorted(SOURCE_NAMES), help="only this source"
    )
    add_time_arguments(group)
    parser.add_argument(
        "--wide",
        action="store_true",
        help="the test's name and the versions in the table, for terminals wider than 80 columns",
    )


def compare_request(arguments: argparse.Namespace) -> feedback_service_pb2.CompareVersionsRequest:
    request = feedback_service_pb2.CompareVersionsRequest(
        model=arguments.model,
        version_a=arguments.version_a,
        version_b=arguments.version_b,
        keys=arguments.keys,
        sources=[SOURCE_NAMES[name] for name in arguments.sources],
    )
    set_time_range(request, arguments)
    return request


# ---- pure formatting ------------------------------------------------------------------------------


def metric_text(comparison: aggregates_pb2.KeyComparison, stats: aggregates_pb2.FeedbackStats) -> str:
    if comparison.metric == aggregates_pb2.COMPARED_METRIC_POSITIVE_RATE:
        return f"{stats.thumbs.positive_rate:.1%}" if stats.thumbs.up + stats.thumbs.down else "—"
    if comparison.metric == aggregates_pb2.COMPARED_METRIC_SCORE_MEAN:
        return f"{stats.scores.mean:.4g}" if stats.scores.count else "—"
    return "—"


def tested(comparison: aggregates_pb2.KeyComparison) -> bool:
    """Whether the comparison has a test to show: a test, and votes or scores on both sides."""
    return bool(comparison.test) and comparison.sample_size_a > 0 and comparison.sample_size_b > 0


def difference_text(comparison: aggregates_pb2.KeyComparison) -> str:
    if not tested(comparison):
        return "—"
    if comparison.metric == aggregates_pb2.COMPARED_METRIC_POSITIVE_RATE:
        return f"{comparison.difference * 100:+.1f} pp"
    if comparison.metric == aggregates_pb2.COMPARED_METRIC_SCORE_MEAN:
        return f"{comparison.difference:+.4g}"
    return "—"


def test_cell(comparison: aggregates_pb2.KeyComparison, version_a: str, version_b: str) -> str:
    sides = ((version_a, comparison.sample_size_a), (version_b, comparison.sample_size_b))
    missing = [version for version, size in sides if not size]
    if missing and (comparison.test or len(missing) == 1):
        return f"— (no data for {' and '.join(missing)})"
    if not comparison.test:
        return "— (no thumbs or scores)"
    name = _STATISTIC_NAMES.get(comparison.test, "statistic")
    return f"{comparison.test} ({name} {comparison.statistic:+.2f})"


def short_test_cell(comparison: aggregates_pb2.KeyComparison) -> str:
    """The test cell of the narrow table: the statistic (its letter says the test), or why there is none."""
    sides = (("A", comparison.sample_size_a), ("B", comparison.sample_size_b))
    missing = [side for side, size in sides if not size]
    if missing and (comparison.test or len(missing) == 1):
        return f"no data for {' and '.join(missing)}"
    if not comparison.test:
        return "no thumbs or scores"
    name = _STATISTIC_NAMES.get(comparison.test, comparison.test)
    return f"{name} {comparison.statistic:+.2f}"


def p_value_text(comparison: aggregates_pb2.KeyComparison) -> str:
    if not tested(comparison):
        return "—"
    return f"{comparison.p_value:.3g}" + (" *" if comparison.p_value < SIGNIFICANCE else "")


def row(comparison: aggregates_pb2.KeyComparison, version_a: str, version_b: str) -> tuple[str, ...]:
    return (
        comparison.key,
        test_cell(comparison, version_a, version_b),
        metric_text(comparison, comparison.a),
        metric_text(comparison, comparison.b),
        difference_text(comparison),
        p_value_text(comparison),
        str(comparison.sample_size_a),
        str(comparison.sample_size_b),
    )


def table(response: feedback_service_pb2.CompareVersionsResponse, version_a: str, version_b: str) -> Table:
    """Every column, with the versions in the headings (--wide)."""
    headings = ("key", "test", f"A: {version_a}", f"B: {version_b}", "B - A", "p-value", "n A", "n B")
    # Text: versions and values are shown as they are, never read as markup.
    view = Table(*(Column(header=Text(heading)) for heading in headings), header_style="bold")
    for column in view.columns[2:]:
        column.justify = "right"
    for comparison in response.comparisons:
        view.add_row(*map(Text, row(comparison, version_a, version_b)))
    return view


def narrow_table(response: feedback_service_pb2.CompareVersionsResponse) -> Table:
    """What fits 80 columns: A and B (named by :func:`sides_text`), the figures, the test last; the key and
    the test cut with an ellipsis when they do not fit."""
    headings = ("key", "A", "B", "B - A", "p-value", "n A", "n B", "test")
    view = Table(*headings, header_style="bold", box=None, pad_edge=False)
    for column in view.columns[1:-1]:
        column.justify = "right"
        column.no_wrap = True
    for comparison in response.comparisons:
        figures = row(comparison, "A", "B")[2:]
        view.add_row(
            Text(comparison.key, no_wrap=True, overflow="ellipsis"),
            *map(Text, figures),
            Text(short_test_cell(comparison), no_wrap=True, overflow="ellipsis"),
        )
    return view


def sides_text(model: str, version_a: str, version_b: str) -> Text:
    """The line above the narrow table: which versions A and B are (wrapped, never cut, when long)."""
    return Text(f"A = {version_a}, B = {version_b} (of {model})", overflow="fold")


# ---- I/O ----------------------------------------------------------------------------------------


def empty_versions(response: feedback_service_pb2.CompareVersionsResponse, version_a: str, version_b: str) -> list[str]:
    """The versions without any matching feedback: with one of them, there is nothing to test."""
    empty = []
    if not any(comparison.a.count for comparison in response.comparisons):
        empty.append(version_a)
    if not any(comparison.b.count for comparison in response.comparisons):
        empty.append(version_b)
    return empty


async def run(arguments: argparse.Namespace, connection: ConnectionOptions) -> ExitCode:
    request = compare_request(arguments)
    async with connection.open_client() as client:
        response = await client.compare_versions(request)
    empty = empty_versions(response, arguments.version_a, arguments.version_b)
    machine = machine_output(arguments)
    if machine:
        write_json_line(message_to_dict(response))
    if empty:
        # Never a test statistic for an empty side: it would read as "no difference" (+0.0 pp, p 1).
        said = f"no data for {' and '.join(empty)} of {arguments.model} (with these filters): nothing to compare"
        print(said, file=sys.stderr if machine else sys.stdout)
        return ExitCode.NO_DATA
    if not machine:
        console = Console()
        if arguments.wide:
            console.print(table(response, arguments.version_a, arguments.version_b))
        else:
            console.print(sides_text(arguments.model, arguments.version_a, arguments.version_b), style="dim")
            console.print(narrow_table(response))
    return ExitCode.OK


COMMAND = Command(
    examples=EXAMPLES,
    add_arguments=add_arguments,
    run=run,
)
