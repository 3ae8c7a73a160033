"""The ``feedback`` command line: ``pip install 'feedback-client[cli]'``.

Client commands (send, list, tail, export, compare, keys), one module each, all through the SDK; other
distributions add commands through the ``feedback.commands`` entry-point group (see
:class:`feedback_client.cli.command.ExternalCommand`): the server adds serve, migrate, verify and repair.
"""

from __future__ import annotations

from feedback_client.cli.command import ENTRY_POINT_GROUP, Command, ExternalCommand
from feedback_client.cli.exit_codes import EXIT_CODES_HELP, ExitCode
from feedback_client.cli.main import main

__all__ = ["ENTRY_POINT_GROUP", "EXIT_CODES_HELP", "Command", "ExitCode", "ExternalCommand", "main"]
