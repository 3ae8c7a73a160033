"""Registers the client commands with the ``feedback`` parser and runs the one asked for."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import grpc

from feedback_client import FeedbackError
from feedback_service.cli_client import compare, export, listing, send, tail
from feedback_service.cli_client.command import Command
from feedback_service.cli_client.connection import CREDENTIALS_HELP, ConnectionOptions, add_connection_arguments
from feedback_service.cli_client.exit_codes import EXIT_CODES_HELP, ExitCode, UsageError, error_lines, exit_code_for
from feedback_service.cli_client.output import add_json_argument
from feedback_service.cli_client.writers import MissingDependencyError

COMMANDS: tuple[Command, ...] = (send.COMMAND, listing.COMMAND, tail.COMMAND, export.COMMAND, compare.COMMAND)


def add_client_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> dict[str, argparse.ArgumentParser]:
    """Adds send, list, tail, export and compare; returns their parsers by name."""
    parsers = {}
    for command in COMMANDS:
        parser = commands.add_parser(
            command.name,
            help=command.summary,
            description=command.summary[0].upper() + command.summary[1:] + ".",
            epilog=command.examples + CREDENTIALS_HELP + EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(parser)
        add_json_argument(parser)
        add_connection_arguments(parser)
        parser.set_defaults(client_command=command)
        parsers[command.name] = parser
    return parsers


def is_client_command(arguments: argparse.Namespace) -> bool:
    return isinstance(getattr(arguments, "client_command", None), Command)


def _report(lines: list[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr)


def run_client_command(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run a client command; its exit code (see EXIT_CODES_HELP). Usage errors exit 2 through ``parser``."""
    command: Command = arguments.client_command
    try:
        connection = ConnectionOptions.from_arguments(arguments, os.environ)
    except UsageError as error:
        parser.error(str(error))
    try:
        return int(asyncio.run(command.run(arguments, connection)))
    except UsageError as error:
        parser.error(str(error))
    except FeedbackError as error:
        lines = error_lines(command.name, error)
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
        _report([f"feedback {command.name}: {error}", *getattr(error, "__notes__", [])])
        return ExitCode.FAILURE
