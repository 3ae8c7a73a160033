"""The client distribution installs light: the SDK pulls no server dependency, and its [cli] extra gives a
working ``feedback`` with every client command, still without anything of the server.

Each test installs ./clients/python into a fresh venv (pip from the local path; its dependencies from PyPI)
and, for the CLI, runs every client command there against the session server of the main venv.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

from feedback_client.cli.main import CLI_EXTRA, SERVER_INSTALL
from feedback_service.server import FeedbackServer
from tests.support import cli
from tests.support.cli import Done

ROOT = Path(__file__).resolve().parents[1]
# What the SDK may bring: gRPC, protobuf and the google.rpc messages. Nothing of the server.
ALLOWED = {
    "feedback-client", "grpcio", "protobuf", "googleapis-common-protos", "typing-extensions", "pip", "setuptools",
}  # fmt: skip
# What the [cli] extra adds: rich and what it needs.
CLI_ALLOWED = ALLOWED | {"rich", "markdown-it-py", "mdurl", "pygments"}
SERVER_ONLY = {"clickhouse-connect", "chdb", "structlog", "feedback-service", "grpcio-health-checking"}
# Not importable where only the client is installed (the main venv has them all).
SERVER_MODULES = ("feedback_service", "chdb", "clickhouse_connect", "structlog")


async def _run(*command: str) -> str:
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


async def _venv_with(tmp_path: Path, requirement: str) -> Path:
    """A fresh venv with ``requirement`` installed; its bin directory."""
    venv = tmp_path / "venv"
    await _run(sys.executable, "-m", "venv", str(venv))
    await _run(
        str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", requirement
    )
    return venv / "bin"


async def _installed(bin_dir: Path) -> set[str]:
    listed = json.loads(
        await _run(str(bin_dir / "python"), "-m", "pip", "list", "--format", "json", "--disable-pip-version-check")
    )
    return {package["name"].lower().replace("_", "-") for package in listed}


async def _importable(bin_dir: Path, modules: tuple[str, ...]) -> list[str]:
    probe = f"import importlib.util as u; print(','.join(m for m in {modules!r} if u.find_spec(m)))"
    return [name for name in (await _run(str(bin_dir / "python"), "-c", probe)).strip().split(",") if name]


async def test_pip_install_of_the_client_pulls_no_server_dependency(tmp_path: Path) -> None:
    bin_dir = await _venv_with(tmp_path, str(ROOT / "clients/python"))
    installed = await _installed(bin_dir)
    assert installed <= ALLOWED, f"unexpected packages: {sorted(installed - ALLOWED)}"
    assert not installed & SERVER_ONLY
    # The SDK works there: it imports, builds feedback and knows its version.
    probe = "import feedback_client as f; print(f.__version__, f.thumbs_up('t').key)"
    assert (await _run(str(bin_dir / "python"), "-c", probe)).split() == ["0.1.0", "thumbs"]
    # `feedback` is there too, and says what to install for its commands.
    feedback = (str(bin_dir / "feedback"),)
    listing = await cli.run_feedback("127.0.0.1:1", "list", "--project", "demo", cwd=tmp_path, command=feedback)
    assert (listing.returncode, listing.stdout) == (1, ""), listing
    assert listing.stderr.strip() == f"feedback list: the client commands need the [cli] extra: {CLI_EXTRA}"
    helped = await cli.run_feedback("127.0.0.1:1", "--help", cwd=tmp_path, command=feedback)
    assert helped.returncode == 0, helped
    assert f"The client commands need the [cli] extra: {CLI_EXTRA}" in helped.stdout


async def test_the_cli_extra_gives_every_client_command_and_nothing_of_the_server(
    tmp_path: Path, server: FeedbackServer
) -> None:
    bin_dir = await _venv_with(tmp_path, f"{ROOT / 'clients/python'}[cli]")
    installed = await _installed(bin_dir)
    assert installed <= CLI_ALLOWED, f"unexpected packages: {sorted(installed - CLI_ALLOWED)}"
    assert await _importable(bin_dir, SERVER_MODULES) == []

    project = f"venv-{uuid.uuid4().hex[:8]}"

    async def feedback(*arguments: str) -> Done:
        return await cli.run_feedback(
            f"127.0.0.1:{server.port}", *arguments, cwd=tmp_path, command=(str(bin_dir / "feedback"),)
        )

    for version, thumb in (("v1", "up"), ("v2", "down")):
        sent = await feedback("send", "--project", project, "--trace-id", f"t-{version}", "--thumb", thumb,
                              "--model", "bot", "--model-version", version)  # fmt: skip
        assert sent.returncode == 0, sent
    listed = await feedback("list", "--project", project)
    assert (listed.returncode, [r["model_version"] for r in listed.json_lines()]) == (0, ["v2", "v1"]), listed
    tail = await feedback("tail", "--project", project, "--no-follow")
    assert tail.returncode == 0, tail
    assert tail.json_lines()[-1]["snapshot_complete"]["group_count"] == 2
    exported = await feedback("export", "--project", project, "-o", str(tmp_path / "out.jsonl"))
    assert exported.returncode == 0, exported
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2
    parquet = await feedback("export", "--project", project, "-o", str(tmp_path / "out.parquet"))
    assert parquet.returncode == 1, parquet
    assert "pip install 'feedback-client[parquet]'" in parquet.stderr
    compared = await feedback(
        "compare", "--project", project, "--model", "bot", "--version-a", "v1", "--version-b", "v2"
    )
    assert compared.returncode == 0, compared
    assert compared.json_lines()[0]["comparisons"][0]["sample_size_b"] == 1
    empty = await feedback("compare", "--project", project, "--model", "bot", "--version-a", "v1", "--version-b", "v99")
    assert empty.returncode == 8, empty
    created = await feedback("keys", "create", "--project", project, "--scope", "read")
    assert created.returncode == 0, created
    [key] = created.json_lines()
    keys = await feedback("keys", "list", "--project", project)
    assert [k["key_id"] for k in keys.json_lines()] == [key["key_id"]]
    assert (await feedback("keys", "revoke", key["key_id"])).returncode == 0
    assert (await feedback("keys", "revoke", "0000000000000000")).returncode == 4
    link = await feedback("console-link", "--project", project, "--reviewer", "alice")
    assert link.returncode == 0, link
    assert "#link=" in link.json_lines()[0]["url"]

    serve = await feedback("serve")
    assert serve.returncode == 2, serve
    assert (
        serve.stderr.strip() == f"feedback serve: a server command, and the server is not installed: {SERVER_INSTALL}"
    )
