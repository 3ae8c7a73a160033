"""How the client commands fail: the exit codes (one table, listed by ``feedback --help``) and error lines."""

from __future__ import annotations

from enum import IntEnum

import grpc

from feedback_client import FeedbackError


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # anything not below: a local file error, an unexpected server error
    USAGE = 2  # a bad argument (argparse's own code)
    REFUSED = 3  # the server refused the input
    NOT_FOUND = 4
    NOT_ALLOWED = 5  # no, a wrong or a revoked key, or a key without the scope or project
    UNAVAILABLE = 6  # the server could not be reached or was busy: try again later
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


_BY_STATUS: dict[grpc.StatusCode, ExitCode] = {
    grpc.StatusCode.INVALID_ARGUMENT: ExitCode.REFUSED,
    grpc.StatusCode.FAILED_PRECONDITION: ExitCode.REFUSED,
    grpc.StatusCode.OUT_OF_RANGE: ExitCode.REFUSED,
    grpc.StatusCode.ALREADY_EXISTS: ExitCode.REFUSED,
    grpc.StatusCode.NOT_FOUND: ExitCode.NOT_FOUND,
    grpc.StatusCode.UNAUTHENTICATED: ExitCode.NOT_ALLOWED,
    grpc.StatusCode.PERMISSION_DENIED: ExitCode.NOT_ALLOWED,
    grpc.StatusCode.UNAVAILABLE: ExitCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ExitCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ExitCode.UNAVAILABLE,
}


def exit_code_for(status: grpc.StatusCode) -> ExitCode:
    """The exit code of a command that failed with a gRPC status."""
    return _BY_STATUS.get(status, ExitCode.FAILURE)


def _statuses(code: ExitCode) -> str:
    return ", ".join(status.name for status, mapped in _BY_STATUS.items() if mapped is code)


EXIT_CODES_HELP = f"""
exit codes of the commands that call the service (all but serve, migrate and keys):
  0    ok (also: Ctrl-C stopping `feedback tail`)
  1    any other failure (e.g. a file that cannot be written)
  2    usage error: a bad or missing argument
  3    the server refused the input ({_statuses(ExitCode.REFUSED)})
  4    not found ({_statuses(ExitCode.NOT_FOUND)})
  5    not allowed ({_statuses(ExitCode.NOT_ALLOWED)})
  6    unavailable, try again later ({_statuses(ExitCode.UNAVAILABLE)})
  130  interrupted (Ctrl-C)
Errors go to stderr as `feedback <command>: <CODE>: <message>`, then one line per bad field.
"""


class UsageError(Exception):
    """A bad or missing argument found after parsing: the command prints its usage and exits 2."""


def error_lines(command: str, error: FeedbackError) -> list[str]:
    """``feedback <command>: <CODE>: <message>``, then one indented line per bad field."""
    lines = [f"feedback {command}: {error.code.name}: {error.message}"]
    lines += [f"  {violation.field}: {violation.description}" for violation in error.field_violations]
    return lines
