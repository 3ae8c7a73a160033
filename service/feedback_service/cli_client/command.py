"""What a client command is made of; ``commands`` registers them and runs the one asked for."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from feedback_service.cli_client.connection import ConnectionOptions
from feedback_service.cli_client.exit_codes import ExitCode


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    summary: str
    examples: str  # the epilog of its --help
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, ConnectionOptions], Coroutine[Any, Any, ExitCode]]
    interrupted: ExitCode = ExitCode.INTERRUPTED  # the exit code after Ctrl-C
