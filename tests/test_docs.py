"""The READMEs stay true: their Python examples run against the real server, the config table is complete."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from feedback_service.config import OPTIONS
from feedback_service.server import FeedbackServer
from tests.support.auth import ADMIN_KEY

ROOT = Path(__file__).resolve().parents[1]
READMES = {name: (ROOT / name).read_text() for name in ("README.md", "clients/python/README.md")}


@pytest.mark.parametrize("readme", READMES)
async def test_python_examples_run_against_the_server(readme: str, server: FeedbackServer) -> None:
    examples = re.findall(r"```python\n(.*?)```", READMES[readme], re.DOTALL)
    assert examples, f"{readme} has no Python example"
    for example in examples:
        code = example.replace("127.0.0.1:50051", f"127.0.0.1:{server.port}")
        result = await _run_python(code)
        assert result.returncode == 0, result.stderr


async def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "FEEDBACK_API_KEY": ADMIN_KEY}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environment,
    )


def test_readme_configuration_table_lists_every_setting() -> None:
    text = READMES["README.md"]
    for option in OPTIONS:
        flag = f"`{option.flag}`" if option.has_flag else "—"
        assert f"| `{option.env}` | {flag} |" in text, f"{option.env} / {flag} missing from README"


def test_every_test_security_md_cites_exists() -> None:
    text = (ROOT / "SECURITY.md").read_text()
    cited = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`|`::(\w+)`", text)
    current_file = ""
    checked = 0
    for path, name, sibling in cited:
        if path:
            current_file = path
            assert (ROOT / path).exists(), path
        test_name = name or sibling
        if test_name:
            assert f"def {test_name}(" in (ROOT / current_file).read_text(), f"{current_file}::{test_name}"
            checked += 1
    assert checked >= 25
