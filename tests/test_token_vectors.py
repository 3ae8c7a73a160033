"""Python and JavaScript mint the same feedback tokens: the shared vectors of clients/testdata.

clients/js/test/tokens.test.ts checks mintFeedbackToken of @feedback-service/web/node against the same
file, so a token minted by a Node backend is byte-for-byte the one a Python backend mints.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from feedback_client.tokens import hash_user_id, mint_feedback_token

VECTORS = json.loads(
    (Path(__file__).resolve().parents[1] / "clients" / "testdata" / "feedback_token_vectors.json").read_text("utf-8")
)


def _python_arguments(options: dict[str, Any]) -> dict[str, Any]:
    """The JS option names of the file (traceId, ttlS) as mint_feedback_token's keywords (trace_id, ttl_s)."""
    return {re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), name): value for name, value in options.items()}


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_python_mints_the_token_of_each_shared_vector(vector: dict[str, Any]) -> None:
    arguments = _python_arguments(vector["options"])
    assert mint_feedback_token(vector["secret"], **arguments) == vector["token"]
    assert hash_user_id(arguments["project"], arguments["user_id"]) == vector["hashed_user"]


@pytest.mark.parametrize("case", VECTORS["refused"], ids=lambda c: c["name"])
def test_python_refuses_each_shared_refused_case(case: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"ttl_s|keys|value_kinds"):
        mint_feedback_token(case["secret"], **_python_arguments(case["options"]))


def test_the_vectors_cover_non_ascii_escaping_and_every_optional_binding() -> None:
    options = [vector["options"] for vector in VECTORS["vectors"]]
    assert any(any(ord(c) > 0xFFFF for c in json.dumps(o, ensure_ascii=False)) for o in options)
    assert {"spanId", "model", "modelVersion", "valueKinds", "ttlS"} <= {name for o in options for name in o}
