"""Write feedback_token_vectors.json: inputs and the tokens clients/python's mint_feedback_token makes of them.

Both SDKs check their minting against this file: tests/test_token_vectors.py (Python) and
clients/js/test/tokens.test.ts (``mintFeedbackToken`` of @feedback-service/web/node), so a token minted
by a Node backend is byte-for-byte the one a Python backend would mint. Run it again only when the
token format changes on purpose:

    .venv/bin/python clients/testdata/generate_token_vectors.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from feedback_client.tokens import hash_user_id, mint_feedback_token

OUTPUT = Path(__file__).resolve().parent / "feedback_token_vectors.json"
SECRET = "test-vector-secret-of-at-least-32-characters"  # noqa: S105 - a public test secret
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z

# (name, secret, keyword arguments of mint_feedback_token); now is NOW unless given.
CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "minimal",
        SECRET,
        {
            "project": "demo",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "user_id": "customer-42",
            "keys": ["thumbs"],
        },
    ),
    (
        "bound to span, model and version, two kinds",
        SECRET,
        {
            "project": "demo",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": "00f067aa0ba902b7",
            "user_id": "customer-42",
            "keys": ["thumbs"],
            "value_kinds": ["thumb", "comment"],
            "model": "support-bot",
            "model_version": "v8",
        },
    ),
    (
        "several keys and kinds in the given order, shortest ttl",
        SECRET,
        {
            "project": "shop",
            "trace_id": "trace-7",
            "user_id": "u",
            "keys": ["thumbs", "reason", "helpfulness"],
            "value_kinds": ["label", "thumb", "score"],
            "ttl_s": 1,
        },
    ),
    (
        "longest ttl, fractional now",
        SECRET,
        {
            "project": "demo",
            "trace_id": "t",
            "user_id": "x",
            "keys": ["thumbs"],
            "ttl_s": 7 * 24 * 3600,
            "now": NOW + 0.999,
        },
    ),
    (
        "non-ASCII text is escaped as Python's json.dumps does",
        SECRET,
        {
            "project": "démo-é",
            "trace_id": "trace-ü-中文",
            "user_id": "用户-ø",
            "keys": ["thumbs"],
            "model": "modèle \U0001f600 emoji",
            "model_version": "v\u00a01 \u007f del",
        },
    ),
    (
        "quotes, backslashes and control characters",
        SECRET,
        {
            "project": 'p"q',
            "trace_id": "a\\b",
            "user_id": "line\nbreak\ttab",
            "keys": ["k\u0001"],
            "model": "</script>",
            "model_version": "\r\b\f",
        },
    ),
    (
        "a non-ASCII secret",
        "sécret-partagé-of-at-least-32-characters-✓",
        {"project": "demo", "trace_id": "t", "user_id": "customer-42", "keys": ["thumbs"]},
    ),
    (
        "empty strings where allowed",
        SECRET,
        {"project": "", "trace_id": "", "user_id": "", "keys": [""], "value_kinds": ["correction"]},
    ),
]

# Inputs mint_feedback_token refuses (ValueError); the JS SDK refuses them too.
REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("ttl of 0", {"ttl_s": 0}),
    ("ttl over 7 days", {"ttl_s": 7 * 24 * 3600 + 1}),
    ("no keys", {"keys": []}),
    ("no value kinds", {"value_kinds": []}),
    ("an unknown value kind", {"value_kinds": ["thumb", "emoji"]}),
]
_REFUSED_BASE = {"project": "demo", "trace_id": "t", "user_id": "u", "keys": ["thumbs"]}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _js_options(arguments: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments as the JS SDK's options: camelCase, ``ttl_s`` -> ``ttlS``."""
    return {_camel(name): value for name, value in arguments.items()}


def main() -> None:
    vectors = []
    for name, secret, given in CASES:
        arguments = {"now": NOW, **given}
        token = mint_feedback_token(secret, **arguments)
        vectors.append(
            {
                "name": name,
                "secret": secret,
                "options": _js_options(arguments),
                "token": token,
                "hashed_user": hash_user_id(arguments["project"], arguments["user_id"]),
            }
        )
    refused = []
    for name, change in REFUSED:
        arguments = {**_REFUSED_BASE, **change, "now": NOW}
        try:
            mint_feedback_token(SECRET, **arguments)
        except ValueError:
            refused.append({"name": name, "secret": SECRET, "options": _js_options(arguments)})
        else:
            raise SystemExit(f"refused case {name!r} was accepted")
    document = {
        "description": (
            "Feedback token test vectors: mint_feedback_token(secret, **options) of clients/python must "
            "return token, and mintFeedbackToken(secret, options) of @feedback-service/web/node too. "
            "options use the JS names (camelCase). Made by clients/testdata/generate_token_vectors.py."
        ),
        "vectors": vectors,
        "refused": refused,
    }
    OUTPUT.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(vectors)} vectors and {len(refused)} refused cases to {OUTPUT}")


if __name__ == "__main__":
    main()
