"""The server's commands of ``feedback``: ``serve``, ``migrate``, ``verify`` and ``repair``.

The ``feedback`` command itself is the client distribution's (:mod:`feedback_client.cli`); the server adds
these commands to it through the ``feedback.commands`` entry points in pyproject.toml. Every ``feedback``
invocation loads this module for the summaries, so it imports nothing of the server: a command loads the
database stack (:mod:`feedback_service.cli_server`) only when it runs or shows its help.
"""

from __future__ import annotations

import argparse

from feedback_client.cli.command import ExternalCommand

_SERVE_EXAMPLES = """
examples:
  feedback serve                                   # embedded engine in ./data, 127.0.0.1:50051
  feedback serve --listen 0.0.0.0:50051 --data-dir /var/lib/feedback
  FEEDBACK_CLICKHOUSE_URL=https://user:pass@host:8443 feedback migrate
  FEEDBACK_SKIP_MIGRATIONS=true feedback serve      # after `feedback migrate` of this release

exit codes: 0 ok, also when SIGTERM or Ctrl-C stops `serve` (gracefully: in-flight calls drain first);
1 the command failed (its error is printed and logged); 2 a bad setting, naming the flag or variable.
"""

_VERIFY_EXAMPLES = """
examples:
  feedback verify                                  # every project, all time (stop the server first when embedded)
  feedback verify --project demo --since 7d
  feedback repair --project demo --since 2026-11-30T00:00:00Z --until 2026-12-01T00:00:00Z

exit codes: 0 the derived tables equal feedback (repair: after its corrections), 1 the database could not be
used, 2 bad argument, 7 differences found (repair: some it cannot correct, listed as unexplained),
130 interrupted (Ctrl-C).
"""


def _add_settings(parser: argparse.ArgumentParser) -> None:
    from feedback_service.cli_server import add_settings_arguments  # noqa: PLC0415  # the database stack, on use

    add_settings_arguments(parser)


def _add_check_arguments(parser: argparse.ArgumentParser) -> None:
    from feedback_service.cli_server import add_check_arguments  # noqa: PLC0415  # the database stack, on use

    add_check_arguments(parser)


def _run(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from feedback_service.cli_server import run  # noqa: PLC0415  # the database stack, on use

    return run(arguments, parser)


SERVE = ExternalCommand(
    summary="migrate the database, then run the gRPC server until SIGTERM/SIGINT",
    add_arguments=_add_settings,
    run=_run,
    epilog=_SERVE_EXAMPLES,
    examples="  feedback serve --listen 0.0.0.0:50051 --data-dir /var/lib/feedback\n",
)
MIGRATE = ExternalCommand(
    summary="create the database and apply pending schema migrations, then exit",
    add_arguments=_add_settings,
    run=_run,
    epilog=_SERVE_EXAMPLES,
    examples="  FEEDBACK_CLICKHOUSE_URL=https://user:pass@host:8443 feedback migrate\n",
)
VERIFY = ExternalCommand(
    summary="compare every derived table with a recomputation from feedback (read-only); exit 7 when they differ",
    add_arguments=_add_check_arguments,
    run=_run,
    epilog=_VERIFY_EXAMPLES,
    examples="  feedback verify --project demo --since 7d         # then `feedback repair`, same options\n",
)
REPAIR = ExternalCommand(
    summary="write the corrections that make every derived table equal its recomputation from feedback",
    add_arguments=_add_check_arguments,
    run=_run,
    epilog=_VERIFY_EXAMPLES,
)
