"""End-user feedback tokens: what a browser sends instead of an API key.

A backend mints a short-lived token bound to one AI call (project, trace, optional span, model,
version), to the feedback keys and value kinds the user may send, and to a hashed end-user id. The
browser sends it with CreateFeedback; the server checks signature, expiry and binding.

Format: ``fbt1.<payload>.<signature>``, both base64url without padding; the payload is JSON and the
signature is HMAC-SHA256 over ``fbt1.<payload>`` with a secret the server knows
(FEEDBACK_TOKEN_SECRETS). Mint with the ``MintFeedbackToken`` RPC, or offline with
:func:`mint_feedback_token` and the shared secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PREFIX = "fbt1"
DEFAULT_TTL_S = 24 * 3600
MAX_TTL_S = 7 * 24 * 3600
VALUE_KINDS = ("thumb", "score", "label", "comment", "correction")


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a token allows. Empty ``span_id``/``model``/``model_version`` bind to empty values."""

    project: str
    trace_id: str
    user: str  # hashed end-user id; stored as the feedback's author
    keys: tuple[str, ...]
    value_kinds: tuple[str, ...]
    expire_at: int  # Unix seconds
    span_id: str = ""
    model: str = ""
    model_version: str = ""
    key_id: str = ""  # which signing secret


class TokenFormatError(ValueError):
    """Not a well-formed token of this version."""


def secret_id(secret: str) -> str:
    """A short, public name of a signing secret, so verification picks the right one during rotation."""
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def hash_user_id(project: str, user_id: str) -> str:
    """The pseudonymous author id of an end user: the raw id never leaves the backend in a token."""
    return "u_" + hashlib.sha256(f"{project}\x00{user_id}".encode()).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, signed: str) -> str:
    return _b64(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest())


def sign_envelope(prefix: str, secret: str, payload: dict[str, Any]) -> str:
    """``<prefix>.<payload>.<signature>``: the payload as compact, key-sorted JSON in base64url, signed with
    HMAC-SHA256 over ``<prefix>.<payload>`` (the prefix is signed too, so one kind never passes for
    another). The one envelope of feedback tokens and console links."""
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    signed = f"{prefix}.{body}"
    return f"{signed}.{_signature(secret, signed)}"


def open_envelope(
    prefix: str, token: str, secrets_by_id: dict[str, str], *, what: str, short: str = ""
) -> dict[str, Any]:
    """The payload of an envelope signed by one of the secrets (by the payload's ``kid``). Raises
    TokenFormatError when it is not a well-formed ``prefix`` envelope, ValueError when the secret is
    unknown or the signature does not match; ``what`` names the credential in the messages (``short``
    after the first one)."""
    short = short or what
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != prefix:
        raise TokenFormatError(f"not a {what} (expected {prefix}.<payload>.<signature>)")
    try:
        payload = json.loads(_unb64(parts[1]))
        key_id = str(payload["kid"])
    except (ValueError, KeyError, TypeError) as error:
        raise TokenFormatError(f"the {short} payload is not readable") from error
    secret = secrets_by_id.get(key_id)
    if secret is None:
        raise ValueError(f"the {short} was signed with a secret this server does not accept (rotated out?)")
    if not hmac.compare_digest(_signature(secret, f"{prefix}.{parts[1]}"), parts[2]):
        raise ValueError(f"the {short} signature is invalid: it was altered or signed with another secret")
    if not isinstance(payload, dict):
        raise TokenFormatError(f"the {short} payload is not readable")
    return payload


def mint_feedback_token(
    secret: str,
    *,
    project: str,
    trace_id: str,
    user_id: str,
    keys: Sequence[str],
    value_kinds: Sequence[str] = VALUE_KINDS,
    span_id: str = "",
    model: str = "",
    model_version: str = "",
    ttl_s: int = DEFAULT_TTL_S,
    now: float | None = None,
) -> str:
    """A signed token; ``user_id`` is hashed before it goes in."""
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl_s must be between 1 and {MAX_TTL_S} seconds (7 days), got {ttl_s}")
    unknown = set(value_kinds) - set(VALUE_KINDS)
    if unknown or not value_kinds:
        raise ValueError(f"value_kinds must be a non-empty subset of {VALUE_KINDS}, got {list(value_kinds)}")
    if not keys:
        raise ValueError("keys must name at least one feedback key")
    issued = int(time.time() if now is None else now)
    payload: dict[str, Any] = {
        "kid": secret_id(secret),
        "prj": project,
        "tid": trace_id,
        "sid": span_id,
        "mdl": model,
        "ver": model_version,
        "usr": hash_user_id(project, user_id),
        "keys": list(keys),
        "kinds": list(value_kinds),
        "exp": issued + ttl_s,
    }
    return sign_envelope(PREFIX, secret, payload)


def looks_like_token(credential: str) -> bool:
    return credential.startswith(PREFIX + ".")


def verify_signature(token: str, secrets_by_id: dict[str, str]) -> TokenClaims:
    """The claims of a token signed by one of the secrets; raises TokenFormatError or ValueError.

    Expiry and binding are checked by the server, not here.
    """
    payload = open_envelope(PREFIX, token, secrets_by_id, what="feedback token", short="token")
    key_id = str(payload["kid"])
    try:
        return TokenClaims(
            project=str(payload["prj"]),
            trace_id=str(payload["tid"]),
            span_id=str(payload.get("sid", "")),
            model=str(payload.get("mdl", "")),
            model_version=str(payload.get("ver", "")),
            user=str(payload["usr"]),
            keys=tuple(str(k) for k in payload["keys"]),
            value_kinds=tuple(str(k) for k in payload["kinds"]),
            expire_at=int(payload["exp"]),
            key_id=key_id,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise TokenFormatError("the token payload misses a claim") from error
