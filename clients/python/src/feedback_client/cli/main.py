"""``feedback``: the client commands of this package, and the commands other installed distributions add.

Only the command that runs is loaded: ``feedback list`` imports the list command (and rich), never the
others, and the server's commands (entry points of the ``feedback.commands`` group) load their database
stack only when one of them runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points

from feedback_client import __version__
from feedback_client.cli.command import ENTRY_POINT_GROUP, ExternalCommand
from feedback_client.cli.commands import CLIENT_COMMANDS, add_client_arguments, run_client_command
from feedback_client.cli.exit_codes import EXIT_CODES_HELP, ExitCode

CLI_EXTRA = "pip install 'feedback-client[cli]' (in a checkout of the service: pip install './clients/python[cli]')"
_CLI_PACKAGES = ("rich",)  # what the [cli] extra adds to the SDK's dependencies
SERVER_INSTALL = "pip install feedback-service (in a checkout of the service: pip install ./clients/python .)"
# The commands the server distribution adds; named here only to say what to install when it is missing.
SERVER_COMMANDS = ("serve", "migrate", "verify", "repair")

_EXAMPLES = """
examples:
  feedback send --project demo --trace-id 4bf92f3577b34da6a3ce929d0e0e4736 --thumb up \\
      --model support-bot --model-version v7
  feedback list --project demo --since 1h
  feedback tail --project demo --model support-bot
  feedback export --project demo --output feedback.parquet
  feedback compare --project demo --model support-bot --version-a v7 --version-b v8
  feedback keys create --project demo --scope ingest --name "web app"
  feedback console-link --project demo --reviewer alice
"""
_MORE = "  feedback COMMAND --help                          # a command's options, examples and exit codes\n"


@dataclass(frozen=True, slots=True)
class _External:
    """An entry point of the ``feedback.commands`` group: its command, or why it could not be loaded."""

    name: str
    distribution: str
    command: ExternalCommand | None
    problem: str = ""


def _external_commands() -> dict[str, _External]:
    found: dict[str, _External] = {}
    known = {name: order for order, name in enumerate(SERVER_COMMANDS)}  # the server's in their usual order
    ordered = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (known.get(e.name, len(known)), e.name))
    for entry_point in ordered:
        if entry_point.name in CLIENT_COMMANDS or entry_point.name in found:
            continue  # a client command, or one another distribution added first, keeps its name
        distribution = f"{entry_point.dist.name} {entry_point.dist.version}" if entry_point.dist else entry_point.value
        try:
            command = entry_point.load()
        except Exception as error:  # a broken plugin must not break the other commands
            problem = f"{type(error).__name__}: {error}"
            found[entry_point.name] = _External(entry_point.name, distribution, None, problem)
            continue
        if not isinstance(command, ExternalCommand):
            problem = f"{entry_point.value} is not a feedback_client.cli.command.ExternalCommand"
            found[entry_point.name] = _External(entry_point.name, distribution, None, problem)
            continue
        found[entry_point.name] = _External(entry_point.name, distribution, command)
    return found


def _version(external: dict[str, _External]) -> str:
    by_distribution: dict[str, list[str]] = {}
    for item in external.values():
        by_distribution.setdefault(item.distribution, []).append(item.name)
    added = "".join(f"; {name} ({', '.join(commands)})" for name, commands in by_distribution.items())
    return f"%(prog)s: feedback-client {__version__}{added}"


def _epilog(external: dict[str, _External]) -> str:
    notes = ""
    if not any(name in external for name in SERVER_COMMANDS):
        notes += f"\nThe server's commands ({', '.join(SERVER_COMMANDS)}) come with the server: {SERVER_INSTALL}\n"
    if any(importlib.util.find_spec(name) is None for name in _CLI_PACKAGES):
        notes += f"\nThe client commands need the [cli] extra: {CLI_EXTRA}\n"
    added = "".join(item.command.examples for item in external.values() if item.command)
    return _EXAMPLES + added + _MORE + notes + EXIT_CODES_HELP


def _parser(external: dict[str, _External]) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser, and an empty parser per command (filled only for the command that runs)."""
    parser = argparse.ArgumentParser(
        prog="feedback",
        description="Feedback on AI outputs: send it, list it, follow it, export it, compare model versions.",
        epilog=_epilog(external),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version(external))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parsers = {name: commands.add_parser(name, help=entry.summary) for name, entry in CLIENT_COMMANDS.items()}
    for name, item in external.items():
        summary = item.command.summary if item.command else f"(cannot be loaded from {item.distribution})"
        parsers[name] = commands.add_parser(name, help=summary)
    return parser, parsers


def _wanted(argv: Sequence[str]) -> str | None:
    """The command named on the command line: its first word that is not an option (the top level takes
    none with a value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def _fail(message: str, code: ExitCode) -> int:
    print(message, file=sys.stderr)
    return code


def _main(argv: list[str]) -> int:
    external = _external_commands()
    wanted = _wanted(argv)
    if wanted in SERVER_COMMANDS and wanted not in external:
        message = f"feedback {wanted}: a server command, and the server is not installed: {SERVER_INSTALL}"
        return _fail(message, ExitCode.USAGE)
    parser, parsers = _parser(external)
    if wanted in CLIENT_COMMANDS:
        try:
            command = CLIENT_COMMANDS[wanted].load()
        except ModuleNotFoundError as error:
            if (error.name or "").partition(".")[0] not in _CLI_PACKAGES:
                raise
            return _fail(f"feedback {wanted}: the client commands need the [cli] extra: {CLI_EXTRA}", ExitCode.FAILURE)
        add_client_arguments(parsers[wanted], wanted, command)
    elif wanted in external:
        item = external[wanted]
        if item.command is None:
            message = f"feedback {wanted}: cannot load it from {item.distribution}: {item.problem}"
            return _fail(message, ExitCode.FAILURE)
        summary = item.command.summary
        parsers[wanted].description = summary[0].upper() + summary[1:] + "."
        parsers[wanted].epilog = item.command.epilog
        parsers[wanted].formatter_class = argparse.RawDescriptionHelpFormatter
        item.command.add_arguments(parsers[wanted])
    arguments, unknown = parser.parse_known_args(argv)
    # The usage of the command (or of its action: `keys create`) that was given the unknown options.
    usage: argparse.ArgumentParser = getattr(arguments, "usage_parser", None) or parsers[arguments.command]
    if unknown:
        usage.error(f"unrecognized arguments: {' '.join(unknown)}")
    if arguments.command in CLIENT_COMMANDS:
        return run_client_command(arguments, usage)
    chosen = external[arguments.command].command
    if chosen is None:  # not reached: a command that cannot be loaded was refused above
        return ExitCode.FAILURE
    return chosen.run(arguments, usage)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``feedback`` command; returns its exit code."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:  # Ctrl-C outside a command's own handling (e.g. while it loads)
        return ExitCode.INTERRUPTED
