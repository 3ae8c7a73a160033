"""The client commands of ``feedback``: send, list, tail, export and compare, through the Python SDK."""

from __future__ import annotations

from feedback_service.cli_client.commands import COMMANDS, add_client_commands, is_client_command, run_client_command
from feedback_service.cli_client.exit_codes import EXIT_CODES_HELP, ExitCode

__all__ = ["COMMANDS", "EXIT_CODES_HELP", "ExitCode", "add_client_commands", "is_client_command", "run_client_command"]
