"""The SDK is a light distribution: installing it into a fresh venv pulls no server dependency."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What the SDK may bring: gRPC, protobuf and the google.rpc messages. Nothing of the server.
ALLOWED = {
    "feedback-client", "grpcio", "protobuf", "googleapis-common-protos", "typing-extensions", "pip", "setuptools",
}  # fmt: skip
SERVER_ONLY = {"clickhouse-connect", "chdb", "structlog", "rich", "feedback-service", "grpcio-health-checking"}


async def _run(*command: str) -> str:
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


async def test_pip_install_of_the_client_pulls_no_server_dependency(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    await _run(sys.executable, "-m", "venv", str(venv))
    python = str(venv / "bin" / "python")
    await _run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT / "clients/python"))
    listed = json.loads(await _run(python, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"))
    installed = {package["name"].lower().replace("_", "-") for package in listed}
    assert installed <= ALLOWED, f"unexpected packages: {sorted(installed - ALLOWED)}"
    assert not installed & SERVER_ONLY
    # The SDK works there: it imports, builds feedback and knows its version.
    probe = "import feedback_client as f; print(f.__version__, f.thumbs_up('t').key)"
    assert (await _run(python, "-c", probe)).split() == ["0.1.0", "thumbs"]
