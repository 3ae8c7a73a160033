"""How the client commands fail: the exit codes (one table, shown by ``--help`` and the README) and error lines."""

from __future__ import annotations

from enum import IntEnum

import grpc

from feedback_client import FeedbackError


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # anything not below: a local file error, a missing optional package, an unexpected server error
    USAGE = 2  # a bad or missing argument (argparse's own code)
    REFUSED = 3  # the server refused the input
    NOT_FOUND = 4
    NOT_ALLOWED = 5  # no, a wrong or a revoked key, or a key without the scope or project
    UNAVAILABLE = 6  # the server could not be reached or was busy: try again later
    # 7 is taken by the server's `feedback verify` and `feedback repair` (the derived tables differ).
    NO_DATA = 8  # `feedback compare`: a version has no matching feedback, so there is nothing to test
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


# What each exit code means, in order: --help prints this table and the README repeats it (a test compares).
MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "ok; also Ctrl-C stopping `feedback tail`, which runs until it is stopped",
    ExitCode.FAILURE: "any other failure (a file that cannot be written, a missing optional package)",
    ExitCode.USAGE: "usage error: a bad or missing argument, e.g. no --project with the admin key",
    ExitCode.REFUSED: f"the server refused the input ({_statuses(ExitCode.REFUSED)})",
    ExitCode.NOT_FOUND: f"not found ({_statuses(ExitCode.NOT_FOUND)}), e.g. `feedback keys revoke` of an unknown key",
    ExitCode.NOT_ALLOWED: f"not allowed ({_statuses(ExitCode.NOT_ALLOWED)})",
    ExitCode.UNAVAILABLE: f"unavailable, try again later ({_statuses(ExitCode.UNAVAILABLE)})",
    ExitCode.NO_DATA: "nothing to compare: `feedback compare` found no feedback for a version",
    ExitCode.INTERRUPTED: "interrupted by Ctrl-C (every command but `feedback tail`)",
}

EXIT_CODES_HELP = (
    "\nexit codes of the client commands:\n"
    + "".join(f"  {code.value:<4} {meaning}\n" for code, meaning in MEANINGS.items())
    + "Errors go to stderr as `feedback <command>: <CODE>: <message>`, then one line per bad field.\n"
)


class UsageError(Exception):
    """A bad or missing argument found after parsing: the command prints its usage and exits 2."""


class MissingDependencyError(Exception):
    """An optional package is not installed (exit 1); the message says what to install."""


def error_lines(prog: str, error: FeedbackError) -> list[str]:
    """``feedback <command>: <CODE>: <message>`` (``prog`` is ``feedback <command>``), then one indented line
    per bad field.

    Each bad field is said once: the server's message repeats them (``invalid request: feedback.score: must
    be a finite number; ...``), so when it does, the first line keeps only what comes before them.
    """
    fields = [f"{violation.field}: {violation.description}" for violation in error.field_violations]
    message = error.message
    if fields and all(text in message for text in fields):
        message = message[: min(message.index(text) for text in fields)].rstrip(" :;") or "invalid request"
    return [f"{prog}: {error.code.name}: {message}", *(f"  {text}" for text in fields)]
