"""``feedback serve`` takes its ports before it writes anything: a port in use fails the start at once,
naming the address and its variable, with no admin key, token secret, lock or database left behind."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from tests.support.server_process import run_cli

FREE = "127.0.0.1:0"


@pytest.mark.parametrize(
    ("variable", "flag"),
    [
        ("FEEDBACK_LISTEN", "--listen"),
        ("FEEDBACK_HTTP_LISTEN", "--http-listen"),
        ("FEEDBACK_METRICS_LISTEN", "--metrics-listen"),
    ],
)
async def test_a_port_in_use_fails_the_start_before_anything_is_written(
    tmp_path: Path, variable: str, flag: str
) -> None:
    data_dir = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        ports = {"--listen": FREE, "--http-listen": FREE, "--metrics-listen": FREE, flag: address}
        arguments = ["serve", "--data-dir", str(data_dir), *(part for item in ports.items() for part in item)]
        # No admin key given: a start that got further would create the local one in the data dir.
        done = await asyncio.to_thread(run_cli, arguments, cwd=tmp_path)
    assert done.returncode == 1, done
    assert f"cannot listen on {address} ({variable}): " in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "migrated" not in done.stderr, "it stopped before migrating"
    assert not data_dir.exists(), f"wrote {sorted(p.name for p in data_dir.iterdir())}"
