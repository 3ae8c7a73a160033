"""The real ``feedback`` command as a child process, for the CLI tests.

Runs ``python -m feedback_service`` (the client's ``feedback``, with the server's commands added) or any
other ``feedback`` executable, asynchronously: a server in this process's event loop keeps serving while the
command talks to it. Credentials and target come from the environment, as a user's shell would give them.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.auth import ADMIN_KEY
from tests.support.server_process import child_environment

CLI_TIMEOUT_S = 60
# The main venv's `feedback`: python -m feedback_service is the same command.
FEEDBACK = (sys.executable, "-m", "feedback_service")


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        """stdout without terminal escape codes (colours, bold, cursor moves)."""
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.stdout)

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def last_error_line(self) -> str:
        return self.stderr.strip().splitlines()[-1] if self.stderr.strip() else ""


def cli_environment(target: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: no FEEDBACK_* of the developer's shell, the target and admin key, wide output."""
    return child_environment(
        {"FEEDBACK_TARGET": target, "FEEDBACK_API_KEY": ADMIN_KEY, "COLUMNS": "200", **(env or {})}
    )


async def start_cli(
    target: str,
    *arguments: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    command: Sequence[str] = FEEDBACK,
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *command,
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=cli_environment(target, env),
    )


async def run_feedback(
    target: str,
    *arguments: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    command: Sequence[str] = FEEDBACK,
) -> Done:
    """Run ``feedback *arguments`` to completion (stdout is a pipe: machine output unless TTY_COMPATIBLE=1)."""
    process = await start_cli(target, *arguments, cwd=cwd, env=env, command=command)
    stdout, stderr = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    assert process.returncode is not None
    return Done(process.returncode, stdout.decode(), stderr.decode())
