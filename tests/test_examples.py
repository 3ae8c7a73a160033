"""examples/evaluation_loop.py follows a model's aggregates and prints each change, as the README shows."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from feedback_proto.v1 import feedback_pb2
from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_service.server import FeedbackServer
from tests.helpers import thumbs_up
from tests.support.auth import ADMIN_KEY

if TYPE_CHECKING:  # the async stub class exists only in the .pyi stubs
    from feedback_proto.v1.feedback_service_pb2_grpc import FeedbackServiceAsyncStub as FeedbackServiceStub

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "evaluation_loop.py"


async def test_the_evaluation_loop_prints_the_snapshot_and_then_each_change(
    server: FeedbackServer, stub: FeedbackServiceStub, project: str
) -> None:
    await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=thumbs_up(project, model="bot", model_version="v1")))
    loop = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--target",
        f"127.0.0.1:{server.port}",
        "--project",
        project,
        "--model",
        "bot",
        "--duration",
        "6",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "FEEDBACK_API_KEY": ADMIN_KEY},
    )
    assert loop.stdout is not None
    lines: list[str] = []
    while not any("snapshot complete" in line for line in lines):
        line = (await asyncio.wait_for(loop.stdout.readline(), 15)).decode()
        if not line:  # the example ended early
            _, errors = await loop.communicate()
            raise AssertionError(f"the example stopped: {lines} {errors.decode()}")
        lines.append(line)
    down = thumbs_up(project, model="bot", model_version="v2", thumb=feedback_pb2.THUMB_DOWN)
    await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=down))
    lines.append((await asyncio.wait_for(loop.stdout.readline(), 5)).decode())
    _, errors = await loop.communicate()
    assert loop.returncode == 0, errors.decode()
    assert lines[0].split() == ["version", "key", "count", "thumbs", "+/-", "positive", "(95%", "CI)", "mean", "score"]
    assert lines[1].split()[:4] == ["v1", "thumbs", "1", "1/0"]
    assert "snapshot complete: 1 groups" in lines[2]
    assert lines[3].split()[:4] == ["v2", "thumbs", "1", "0/1"]
