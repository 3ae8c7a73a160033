"""The real ``feedback`` command as a child process, for tests of restarts, signals and the CLI.

A process can open one embedded engine path only, so tests that stop and
restart the server, or send it signals, run ``python -m feedback_service`` in a
subprocess of their own. Its stdout and stderr go to a log file, never a pipe:
the server writes one JSON line per RPC and a pipe nobody reads would fill up
and stall it. Readiness is the ``"event": "listening"`` line, whose
``address`` carries the port the server bound (tests listen on port 0).

Every wait has a timeout and every failure message carries the server's log.
Leaving the context manager (sync or async) kills a server still running, so a
failing test never leaves a process behind.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc

from tests.support.auth import ADMIN_KEY, authorized_channel

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
_POLL_S = 0.05
_log_numbers = itertools.count(1)


class ServerProcessError(AssertionError):
    """The server did not start, did not stop, or is used before it started; the message holds its log."""


def child_environment(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without FEEDBACK_* settings, plus ``overrides``.

    A FEEDBACK_* variable of the developer's shell must not change what a test starts.
    """
    environment = {name: value for name, value in os.environ.items() if not name.startswith("FEEDBACK_")}
    environment["PYTHONUNBUFFERED"] = "1"
    environment.update(overrides or {})
    return environment


def run_cli(
    arguments: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m feedback_service *arguments`` to completion; output captured as text.

    Only for commands that end by themselves (``migrate``, ``--help``, refused
    arguments): their output is small, so pipes are safe.
    """
    return subprocess.run(
        [sys.executable, "-m", "feedback_service", *arguments],
        cwd=cwd,
        env=child_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


_QUERY_SCRIPT = """
import json, sys
import clickhouse_connect
client = clickhouse_connect.get_client(interface="chdb", path=sys.argv[1], database=sys.argv[2])
rows = client.query(sys.argv[3], parameters=json.loads(sys.argv[4])).result_rows
print(json.dumps([list(row) for row in rows], default=str))
"""


def query_data_dir(
    data_dir: Path, sql: str, parameters: Mapping[str, Any] | None = None, *, database: str = "feedback"
) -> list[list[Any]]:
    """Rows of ``sql`` run by a fresh process on a stopped server's embedded data dir.

    For checks below the API, e.g. counting physical rows without ``FINAL``.
    A subprocess, because this process may already hold another engine path.
    """
    done = subprocess.run(
        [sys.executable, "-c", _QUERY_SCRIPT, str(data_dir), database, sql, json.dumps(dict(parameters or {}))],
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise ServerProcessError(f"query on {data_dir} failed with {done.returncode}: {sql}\n{done.stderr}")
    rows: list[list[Any]] = json.loads(done.stdout)
    return rows


class ServerProcess:
    """``feedback serve`` on 127.0.0.1:0 with the embedded engine in ``data_dir``.

    Usage: ``with ServerProcess(tmp_path / "data") as server:`` (or ``async
    with``) starts it and waits until it listens; then ``server.target`` is the
    gRPC target, ``server.http_url`` the base URL of its HTTP face (also on a
    free port), and ``server.terminate()`` stops it as an orchestrator would.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.extra_args = tuple(extra_args)
        # The server runs with auth on, as deployed; channel() sends this admin key.
        self.env = {"FEEDBACK_ADMIN_KEY": ADMIN_KEY, **(env or {})}
        # A new file per process, so a restarted server's log is its own.
        self.log_path = log_path or data_dir.parent / f"{data_dir.name}-server-{next(_log_numbers)}.log"
        self.command = [
            sys.executable,
            "-m",
            "feedback_service",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--data-dir",
            str(data_dir),
            "--log-format",
            "json",
            "--log-level",
            "info",
            *self.extra_args,
        ]
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._http_url: str | None = None

    # -- starting ---------------------------------------------------------------------------

    def channel(self) -> grpc.aio.Channel:
        """An aio channel to this server that sends the test admin key with every call."""
        return authorized_channel(self.target, ADMIN_KEY)

    def launch(self) -> Self:
        """Start the process without waiting for it to listen (e.g. when it is expected to fail)."""
        if self._process is not None:
            raise ServerProcessError(f"server already launched: {self.command}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            # The child keeps its own copy of the descriptor; ours can close at once.
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_environment(self.env),
                cwd=self.log_path.parent,
            )
        return self

    def start(self, timeout_s: float = START_TIMEOUT_S) -> Self:
        """Launch and block until the server listens; for sync tests and fixtures."""
        self.launch()
        try:
            deadline = time.monotonic() + timeout_s
            while not self._check_ready(deadline, timeout_s):
                time.sleep(_POLL_S)
        except BaseException:
            self.kill()
            raise
        return self

    async def start_async(self, timeout_s: float = START_TIMEOUT_S) -> Self:
        """Launch and wait until the server listens, without blocking the event loop."""
        self.launch()
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if self._check_ready(deadline, timeout_s):
                    break
                await asyncio.sleep(_POLL_S)
        except BaseException:
            self.kill()
            raise
        return self

    def _check_ready(self, deadline: float, timeout_s: float) -> bool:
        """True once the listening line is logged; raises when the process died or time ran out."""
        for event in self.log_events():
            if event.get("event") == "listening":
                address = str(event["address"])
                self._port = int(address.rsplit(":", 1)[1])
                self._http_url = event.get("http_address")
                return True
        exit_code = self.process.poll()
        if exit_code is not None:
            raise ServerProcessError(f"server exited with {exit_code} before listening\n{self._log_report()}")
        if time.monotonic() > deadline:
            raise ServerProcessError(f"server did not listen within {timeout_s} s\n{self._log_report()}")
        return False

    # -- state ------------------------------------------------------------------------------

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise ServerProcessError("server not launched")
        return self._process

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def port(self) -> int:
        if self._port is None:
            raise ServerProcessError(f"server is not listening (yet)\n{self._log_report()}")
        return self._port

    @property
    def target(self) -> str:
        """The gRPC target, ``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """The base URL of the HTTP face (Connect, gRPC-Web, health), ``http://127.0.0.1:PORT``."""
        if self._http_url is None:
            raise ServerProcessError(f"server has no HTTP face (or does not listen yet)\n{self._log_report()}")
        return self._http_url

    @property
    def exit_code(self) -> int | None:
        """None while running."""
        return self.process.poll()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON lines of the log as dicts; other lines (and a half-written last line) are skipped."""
        events: list[dict[str, Any]] = []
        for line in self.log_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events

    def _log_report(self, last_lines: int = 200) -> str:
        lines = self.log_text().splitlines()
        shown = "\n".join(lines[-last_lines:])
        cut = f" (last {last_lines} of {len(lines)} lines)" if len(lines) > last_lines else ""
        return f"--- server log {self.log_path}{cut} ---\n{shown}\n--- end of server log ---"

    # -- stopping ---------------------------------------------------------------------------

    def send_signal(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def wait(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Block until the process exits; its exit code. Kills it and raises after ``timeout_s``."""
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ServerProcessError(f"server did not exit within {timeout_s} s\n{self._log_report()}") from None

    async def wait_async(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Like :meth:`wait`, without blocking the event loop."""
        deadline = time.monotonic() + timeout_s
        while (exit_code := self.process.poll()) is None:
            if time.monotonic() > deadline:
                self.kill()
                raise ServerProcessError(f"server did not exit within {timeout_s} s\n{self._log_report()}")
            await asyncio.sleep(_POLL_S)
        return exit_code

    def terminate(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then wait for the exit; returns the exit code."""
        self.send_signal(signal.SIGTERM)
        return self.wait(timeout_s)

    async def terminate_async(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        self.send_signal(signal.SIGTERM)
        return await self.wait_async(timeout_s)

    def kill(self) -> None:
        """SIGKILL if still running, and reap the process."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()

    # -- context managers: start on entry, never leave a process behind -----------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.kill()

    async def __aenter__(self) -> Self:
        return await self.start_async()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.kill()
