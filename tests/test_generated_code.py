"""The generated feedback_proto package matches protos/ (CI fails when it is stale)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_code_is_up_to_date() -> None:
    script = ROOT / "clients" / "python" / "scripts" / "generate_protos.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_service_and_client_import_the_same_generated_package() -> None:
    import feedback_client
    from feedback_proto.v1 import feedback_pb2
    from feedback_service.api.convert import feedback_message
    from feedback_service.domain.model import Feedback

    assert feedback_client.Feedback is feedback_pb2.Feedback
    produced = feedback_message(Feedback(project="p", feedback_id="f", trace_id="t", key="k"))
    assert isinstance(produced, feedback_pb2.Feedback)
