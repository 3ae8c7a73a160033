"""What the server's commands do (``serve``, ``migrate``, ``verify``, ``repair``); :mod:`feedback_service.cli`
adds them to ``feedback`` and loads this module only when one of them runs."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys

import structlog

from feedback_service.cli_verify import add_verify_arguments, print_report, run_check, scope_of
from feedback_service.config import ConfigError, Settings, add_arguments, load_settings
from feedback_service.domain.errors import FeedbackServiceError
from feedback_service.logging_setup import configure_logging
from feedback_service.server import migrate, serve
from feedback_service.store.engine import ClickHouseEngine
from feedback_service.store.migrations import MigrationError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130  # Ctrl-C during migrate, verify or repair (serve stops gracefully on it, with 0)


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """The settings' flags (``feedback serve --help``): every FEEDBACK_* variable has one, or is env-only."""
    add_arguments(parser)


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """``verify`` and ``repair``: the scope, then the settings that say where the database is."""
    add_verify_arguments(parser)
    add_arguments(parser)


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


def _check(arguments: argparse.Namespace, settings: Settings, parser: argparse.ArgumentParser) -> int:
    try:
        scope = scope_of(arguments)
    except ValueError as error:
        parser.error(str(error))  # exits 2 with the command's usage
    report, after = asyncio.run(run_check(settings, scope, apply=arguments.command == "repair"))
    return print_report(arguments.command, report, after)


def run(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run ``arguments.command``; its exit code. A bad setting exits 2 through ``parser``."""
    try:
        settings = load_settings(arguments)
    except ConfigError as error:
        parser.error(str(error))  # exits 2 with the command's usage
    configure_logging(log_format=settings.log_format, level=settings.log_level)
    log = structlog.get_logger("feedback_service.cli")
    try:
        if arguments.command == "serve":
            # Every request allocates thousands of short-lived objects (protos, rows, dataclasses) that
            # reference counting frees; the default young-generation threshold (700) ran the cyclic
            # collector ~10 times per 1,000-item batch, about 9 ms of CPU per 1,000 items (2 ms with this).
            gc.set_threshold(50_000, 20, 100)
            asyncio.run(serve(settings))
        elif arguments.command == "migrate":
            asyncio.run(_migrate(settings))
        else:
            return _check(arguments, settings, parser)
    except (FeedbackServiceError, MigrationError, ConfigError, OSError) as error:
        log.error("failed", command=arguments.command, error=str(error))
        print(f"feedback {arguments.command}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK if arguments.command == "serve" else EXIT_INTERRUPTED
    return EXIT_OK
