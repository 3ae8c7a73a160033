"""The client commands: which there are, how their parsers are made, and how one runs."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from dataclasses import dataclass

import grpc

from feedback_client import FeedbackError
from feedback_client.cli.command import Command
from feedback_client.cli.connection import CREDENTIALS_HELP, ConnectionOptions, add_connection_arguments
from feedback_client.cli.exit_codes import (
    EXIT_CODES_HELP,
    ExitCode,
    MissingDependencyError,
    UsageError,
    error_lines,
    exit_code_for,
)

JSON_HELP = (
    "print JSON (the default when stdout is not a terminal); proto3 JSON field names, enums by name, "
    "64-bit integers as numbers"
)


@dataclass(frozen=True, slots=True)
class ClientCommand:
    """A client command as ``feedback --help`` lists it; its module (and rich) load only when it is used."""

    summary: str
    module: str  # defines COMMAND, a Command

    def load(self) -> Command:
        command: Command = importlib.import_module(self.module).COMMAND
        return command


_SEND = "store one piece of feedback (a thumb, score or label, a comment, a correction)"
_LIST = "list feedback, newest first, filtered, as a table or JSON lines"
_TAIL = "live aggregates per model, version and key (thumbs, positive rate, scores), updated in place"
_EXPORT = "export raw feedback to a JSONL, CSV or Parquet file, resumably"
_COMPARE = "compare two versions of a model key by key: statistics, difference, p-value"
_KEYS = "create, list and revoke API keys (with a key of the admin scope)"
_CONSOLE_LINK = "a signed, expiring link to the web console for one reviewer, or a read-only one"
CLIENT_COMMANDS: dict[str, ClientCommand] = {
    "send": ClientCommand(_SEND, "feedback_client.cli.send"),
    "list": ClientCommand(_LIST, "feedback_client.cli.listing"),
    "tail": ClientCommand(_TAIL, "feedback_client.cli.tail"),
    "export": ClientCommand(_EXPORT, "feedback_client.cli.export"),
    "compare": ClientCommand(_COMPARE, "feedback_client.cli.compare"),
    "keys": ClientCommand(_KEYS, "feedback_client.cli.keys"),
    "console-link": ClientCommand(_CONSOLE_LINK, "feedback_client.cli.console_link"),
}


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """--json and the connection options, which every client command (or action of one) takes."""
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    add_connection_arguments(parser)


def describe(parser: argparse.ArgumentParser, summary: str, examples: str) -> None:
    """The description and epilog of a client command's --help: examples, credentials, exit codes."""
    parser.description = summary[0].upper() + summary[1:] + "."
    parser.epilog = examples + CREDENTIALS_HELP + EXIT_CODES_HELP
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def add_client_arguments(parser: argparse.ArgumentParser, name: str, command: Command) -> None:
    """Fill the parser of client command ``name``."""
    describe(parser, CLIENT_COMMANDS[name].summary, command.examples)
    command.add_arguments(parser)
    if not command.own_common_arguments:
        add_common_arguments(parser)
    parser.set_defaults(client_command=command)


def _report(lines: list[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr)


def run_client_command(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run a client command; its exit code (see EXIT_CODES_HELP).

    ``parser`` is the command's (or its action's: ``feedback keys revoke``): usage errors exit 2 through it,
    and its prog starts every error line.
    """
    command: Command = arguments.client_command
    try:
        connection = ConnectionOptions.from_arguments(arguments, os.environ)
        if command.needs_project(arguments):
            connection.check_project()
    except UsageError as error:
        parser.error(str(error))
    try:
        return int(asyncio.run(command.run(arguments, connection)))
    except UsageError as error:
        parser.error(str(error))
    except FeedbackError as error:
        lines = error_lines(parser.prog, error)
        if error.code == grpc.StatusCode.UNAUTHENTICATED:
            lines.append(f"  (credential: {connection.credential.origin})")
        elif error.code == grpc.StatusCode.UNAVAILABLE:
            lines.append(f"  (target: {connection.target})")
        _report(lines + getattr(error, "__notes__", []))
        return exit_code_for(error.code)
    except KeyboardInterrupt:
        return command.interrupted
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): nothing more to say, and nothing to flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    except (MissingDependencyError, OSError) as error:
        _report([f"{parser.prog}: {error}", *getattr(error, "__notes__", [])])
        return ExitCode.FAILURE
