"""What a command of ``feedback`` is made of: a client command of this package, or an external command that
another installed distribution adds through the ``feedback.commands`` entry-point group."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from feedback_client.cli.connection import ConnectionOptions
from feedback_client.cli.exit_codes import ExitCode

ENTRY_POINT_GROUP = "feedback.commands"


def _always(arguments: argparse.Namespace) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Command:
    """A client command: it talks to a running server through the SDK.

    ``add_arguments`` adds the command's own options; the connection options and ``--json`` are added after
    them, unless ``own_common_arguments`` says the command adds them itself (``keys`` adds them to each of
    its actions, so that they are accepted after the action).
    """

    examples: str  # the epilog of its --help, before the credentials and exit codes
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, ConnectionOptions], Coroutine[Any, Any, ExitCode]]
    interrupted: ExitCode = ExitCode.INTERRUPTED  # the exit code after Ctrl-C
    # Whether the command acts on a project, so that --project (or $FEEDBACK_PROJECT) is needed with any
    # credential but a project key, which implies its project.
    needs_project: Callable[[argparse.Namespace], bool] = _always
    own_common_arguments: bool = False


@dataclass(frozen=True, slots=True)
class ExternalCommand:
    """A command another distribution adds to ``feedback``, e.g. the server's ``serve``::

        [project.entry-points."feedback.commands"]
        serve = "feedback_service.cli:SERVE"

    The entry point's name is the command's name; it refers to an ExternalCommand. Every ``feedback``
    invocation loads the entry points (``feedback --help`` lists their summaries), so the module that holds
    them must import little: ``add_arguments`` is called only when the command runs or shows its help, and
    ``run`` imports what the command needs. ``run`` returns the exit code; it may call ``parser.error``
    (exit 2 with the command's usage).
    """

    summary: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, argparse.ArgumentParser], int]
    epilog: str = ""  # the end of its own --help: examples, exit codes
    examples: str = ""  # lines for the examples of `feedback --help`, each "  feedback <name> ...\n"
