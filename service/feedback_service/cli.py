"""The ``feedback`` command: ``serve`` and ``migrate``, ``keys``, and the client commands (``send``, ``list``,
``tail``, ``export``, ``compare``; see :mod:`feedback_service.cli_client`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import structlog

from feedback_service import __version__
from feedback_service.cli_client import EXIT_CODES_HELP, add_client_commands, is_client_command, run_client_command
from feedback_service.cli_keys import EXAMPLES as KEY_EXAMPLES
from feedback_service.cli_keys import add_key_commands, run_key_command
from feedback_service.cli_verify import EXAMPLES as VERIFY_EXAMPLES
from feedback_service.cli_verify import SUMMARIES as VERIFY_SUMMARIES
from feedback_service.cli_verify import add_verify_arguments, print_report, run_check, scope_of
from feedback_service.config import ConfigError, Settings, add_arguments, load_settings
from feedback_service.domain.errors import FeedbackServiceError
from feedback_service.logging_setup import configure_logging
from feedback_service.server import migrate, serve
from feedback_service.store.engine import ClickHouseEngine
from feedback_service.store.migrations import MigrationError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

_EXAMPLES = """
examples:
  feedback serve                                   # embedded engine in ./data, 127.0.0.1:50051
  feedback serve --listen 0.0.0.0:50051 --data-dir /var/lib/feedback
  FEEDBACK_CLICKHOUSE_URL=https://user:pass@host:8443 feedback migrate
  feedback keys create --project demo --scope ingest --name "web app"
  feedback send --project demo --trace-id 4bf92f3577b34da6a3ce929d0e0e4736 --thumb up --model support-bot
  feedback list --project demo --since 1h
  feedback tail --project demo --model support-bot
  feedback export --project demo --output feedback.parquet
  feedback compare --project demo --model support-bot --version-a v7 --version-b v8
"""

_KEYS_EXIT_CODES = "`feedback keys` exits 0, 1 when the server refuses, 2 on a bad argument.\n"


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="feedback",
        description="Feedback service: collects feedback on AI outputs over gRPC and stores it in ClickHouse.",
        epilog=_EXAMPLES + EXIT_CODES_HELP + _KEYS_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subparsers: dict[str, argparse.ArgumentParser] = {}
    for name, summary in (
        ("serve", "migrate the database, then run the gRPC server until SIGTERM/SIGINT"),
        ("migrate", "create the database and apply pending schema migrations, then exit"),
    ):
        command = commands.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=_EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_arguments(command)
        subparsers[name] = command
    for name, summary in VERIFY_SUMMARIES.items():
        command = commands.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=VERIFY_EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_verify_arguments(command)
        add_arguments(command)
        subparsers[name] = command
    keys = commands.add_parser(
        "keys",
        help="create, list and revoke API keys on a running server",
        description="Create, list and revoke API keys through a running server.",
        epilog=KEY_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_key_commands(keys)
    subparsers |= add_client_commands(commands)
    return parser, subparsers


async def _migrate(settings: Settings) -> None:
    engine = ClickHouseEngine(settings.engine_config())
    try:
        applied = await migrate(engine, cluster=settings.clickhouse_cluster)
    finally:
        engine.close()
    names = ", ".join(m.name for m in applied) or "nothing to apply, already up to date"
    where = engine.config.describe
    if settings.clickhouse_cluster:
        where += f" on cluster {settings.clickhouse_cluster}"
    print(f"migrated {where}: {names}")


def _verify(arguments: argparse.Namespace, settings: Settings, parser: argparse.ArgumentParser) -> int:
    try:
        scope = scope_of(arguments)
    except ValueError as error:
        parser.error(str(error))  # exits 2 with the command's usage
    apply = arguments.command == "repair"
    report, after = asyncio.run(run_check(settings, scope, apply=apply))
    return print_report(arguments.command, report, after)


def main(argv: Sequence[str] | None = None) -> int:
    parser, subparsers = _parser()
    arguments = parser.parse_args(argv)
    if arguments.command == "keys":
        return run_key_command(arguments)
    if is_client_command(arguments):
        return run_client_command(arguments, subparsers[arguments.command])
    try:
        settings = load_settings(arguments)
    except ConfigError as error:
        subparsers[arguments.command].error(str(error))  # exits 2 with the command's usage
    configure_logging(log_format=settings.log_format, level=settings.log_level)
    log = structlog.get_logger("feedback_service.cli")
    try:
        if arguments.command == "serve":
            asyncio.run(serve(settings))
        elif arguments.command in VERIFY_SUMMARIES:
            return _verify(arguments, settings, subparsers[arguments.command])
        else:
            asyncio.run(_migrate(settings))
    except (FeedbackServiceError, MigrationError, ConfigError, OSError) as error:
        log.error("failed", command=arguments.command, error=str(error))
        print(f"feedback {arguments.command}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
