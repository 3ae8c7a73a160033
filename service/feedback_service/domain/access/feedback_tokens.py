"""End-user feedback tokens and console links on the server: minting, verification (signature, expiry)
and the binding rules.

Both are signed with the token secrets (FEEDBACK_TOKEN_SECRETS): the first signs, all verify, so
rotating the secrets out revokes both. A console link reads ``fbc1.<payload>.<signature>``, a feedback
token ``fbt1.<payload>.<signature>``; the signature covers the prefix, so neither passes for the other.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from feedback_client.tokens import (
    DEFAULT_TTL_S,
    MAX_TTL_S,
    TokenClaims,
    TokenFormatError,
    mint_feedback_token,
    open_envelope,
    secret_id,
    sign_envelope,
    verify_signature,
)
from feedback_service.domain.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from feedback_service.domain.model import FeedbackInput, Source, ValueKind
from feedback_service.domain.validation import normalize_span_id, normalize_trace_id

_KIND_NAMES = {ValueKind.THUMB: "thumb", ValueKind.SCORE: "score", ValueKind.LABEL: "label"}

CONSOLE_LINK_PREFIX = "fbc1"
DEFAULT_CONSOLE_LINK_TTL = timedelta(days=7)
MAX_CONSOLE_LINK_TTL = timedelta(days=30)
MAX_REVIEWER = 256


@dataclasses.dataclass(frozen=True, slots=True)
class ConsoleLinkClaims:
    """What a console link allows: one reviewer of one project, optionally one queue, reviewing or reading."""

    project: str
    reviewer: str
    expire_at: int  # Unix seconds
    queue_id: str = ""  # empty: every queue of the project
    read: bool = False  # a read-only dashboard link
    key_id: str = ""  # which signing secret


def looks_like_console_link(credential: str) -> bool:
    return credential.startswith(CONSOLE_LINK_PREFIX + ".")


def sign_console_link(secret: str, claims: ConsoleLinkClaims) -> str:
    """The link text of ``claims`` signed with ``secret`` (``expire_at`` as given)."""
    payload = {
        "kid": secret_id(secret),
        "prj": claims.project,
        "rev": claims.reviewer,
        "q": claims.queue_id,
        "ro": claims.read,
        "exp": claims.expire_at,
    }
    return sign_envelope(CONSOLE_LINK_PREFIX, secret, payload)


def _console_claims(token: str, secrets_by_id: dict[str, str]) -> ConsoleLinkClaims:
    """The claims of a link signed by one of the secrets; UnauthenticatedError otherwise (expiry unchecked)."""
    try:
        payload = open_envelope(CONSOLE_LINK_PREFIX, token, secrets_by_id, what="console link")
    except TokenFormatError as error:
        raise UnauthenticatedError(f"malformed console link: {error}") from error
    except ValueError as error:
        raise UnauthenticatedError(str(error)) from error
    key_id = str(payload["kid"])
    try:
        return ConsoleLinkClaims(
            project=str(payload["prj"]),
            reviewer=str(payload["rev"]),
            queue_id=str(payload["q"]),
            read=payload["ro"] is True,
            expire_at=int(payload["exp"]),
            key_id=key_id,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise UnauthenticatedError("malformed console link: the payload misses a claim") from error


class TokenAuthority:
    """Signs with the first secret, accepts all of them: rotate by putting the new secret first,
    then dropping the old one once its tokens have expired (at most 7 days)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self._signing = secrets[0] if secrets else None
        self._by_id = {secret_id(secret): secret for secret in secrets}

    def mint(
        self,
        *,
        project: str,
        trace_id: str,
        user_id: str,
        keys: Sequence[str],
        value_kinds: Sequence[str],
        span_id: str,
        model: str,
        model_version: str,
        ttl_s: int | None,
    ) -> tuple[str, datetime]:
        if self._signing is None:
            raise FailedPreconditionError("this server mints no feedback tokens: FEEDBACK_TOKEN_SECRETS is not set")
        found: list[FieldViolation] = []
        if not trace_id:
            found.append(FieldViolation("trace_id", "is required"))
        if not user_id:
            found.append(FieldViolation("user_id", "is required"))
        if not keys:
            found.append(FieldViolation("keys", "must name at least one feedback key"))
        ttl = DEFAULT_TTL_S if ttl_s is None else ttl_s
        if not 0 < ttl <= MAX_TTL_S:
            found.append(FieldViolation("ttl", "must be more than 0 and at most 7 days"))
        if found:
            raise InvalidArgumentError(found)
        now = time.time()
        token = mint_feedback_token(
            self._signing,
            project=project,
            trace_id=normalize_trace_id(trace_id),
            user_id=user_id,
            keys=keys,
            value_kinds=value_kinds,
            span_id=normalize_span_id(span_id),
            model=model,
            model_version=model_version,
            ttl_s=ttl,
            now=now,
        )
        return token, datetime.fromtimestamp(int(now) + ttl, UTC)

    def mint_console_link(
        self, *, project: str, reviewer: str, queue_id: str, read: bool, ttl: timedelta | None
    ) -> tuple[str, datetime]:
        """A signed console link and when it expires; the caller checked project and queue."""
        if self._signing is None:
            raise FailedPreconditionError("this server mints no console links: FEEDBACK_TOKEN_SECRETS is not set")
        found: list[FieldViolation] = []
        if not 1 <= len(reviewer) <= MAX_REVIEWER:
            found.append(
                FieldViolation("reviewer", f"is required: 1 to {MAX_REVIEWER} characters naming who the link is for")
            )
        lifetime = DEFAULT_CONSOLE_LINK_TTL if ttl is None else ttl
        if not timedelta(0) < lifetime <= MAX_CONSOLE_LINK_TTL:
            found.append(FieldViolation("ttl", "must be more than 0 and at most 30 days"))
        if found:
            raise InvalidArgumentError(found)
        expire_at = int(time.time() + lifetime.total_seconds())
        claims = ConsoleLinkClaims(
            project=project, reviewer=reviewer, queue_id=queue_id, read=read, expire_at=expire_at
        )
        return sign_console_link(self._signing, claims), datetime.fromtimestamp(expire_at, UTC)

    def verify_console_link(self, token: str, *, now: float | None = None) -> ConsoleLinkClaims:
        if not self._by_id:
            raise UnauthenticatedError("this server accepts no console links: FEEDBACK_TOKEN_SECRETS is not set")
        claims = _console_claims(token, self._by_id)
        if (time.time() if now is None else now) >= claims.expire_at:
            expired = datetime.fromtimestamp(claims.expire_at, UTC).isoformat()
            raise UnauthenticatedError(f"the console link expired at {expired}; ask for a new one")
        return claims

    def verify(self, token: str, *, now: float | None = None) -> TokenClaims:
        if not self._by_id:
            raise UnauthenticatedError("this server accepts no feedback tokens: FEEDBACK_TOKEN_SECRETS is not set")
        try:
            claims = verify_signature(token, self._by_id)
        except TokenFormatError as error:
            raise UnauthenticatedError(f"malformed feedback token: {error}") from error
        except ValueError as error:
            raise UnauthenticatedError(str(error)) from error
        if (time.time() if now is None else now) >= claims.expire_at:
            expired = datetime.fromtimestamp(claims.expire_at, UTC).isoformat()
            raise UnauthenticatedError(f"the feedback token expired at {expired}; mint a new one")
        return claims


def _bound(requested: str, bound: str, name: str) -> str:
    """A field the token binds: empty takes the token's value, anything else must equal it."""
    if requested and requested != bound:
        raise PermissionDeniedError(f"feedback.{name} {requested!r} is outside this token's binding ({bound!r})")
    return bound


def bind_to_token(draft: FeedbackInput, claims: TokenClaims) -> FeedbackInput:
    """The feedback as the token allows it; PermissionDeniedError names the first field out of binding."""
    if draft.project and draft.project != claims.project:
        raise PermissionDeniedError(
            f"this token belongs to project {claims.project!r}; it cannot act on project {draft.project!r}"
        )
    if draft.key not in claims.keys:
        raise PermissionDeniedError(
            f"feedback.key {draft.key!r} is not allowed by this token (allowed: {list(claims.keys)})"
        )
    used = [_KIND_NAMES[draft.value_kind]] if draft.value_kind in _KIND_NAMES else []
    used += [kind for kind, text in (("comment", draft.comment), ("correction", draft.correction)) if text]
    for kind in used:
        if kind not in claims.value_kinds:
            raise PermissionDeniedError(f"this token does not allow a {kind} (allowed: {list(claims.value_kinds)})")
    if draft.source not in (Source.UNSPECIFIED, Source.USER):
        raise PermissionDeniedError("feedback sent with a token is end-user feedback: source must be SOURCE_USER")
    # Hex ids match in lower case on both sides: a token minted elsewhere may bind them in upper case.
    span_id = normalize_span_id(draft.span_id)
    return dataclasses.replace(
        draft,
        project=claims.project,
        trace_id=_bound(normalize_trace_id(draft.trace_id), normalize_trace_id(claims.trace_id), "trace_id"),
        span_id=_bound(span_id, normalize_span_id(claims.span_id), "span_id") if claims.span_id else span_id,
        model=_bound(draft.model, claims.model, "model"),
        model_version=_bound(draft.model_version, claims.model_version, "model_version"),
        source=Source.USER,
        author=_bound(draft.author, claims.user, "author"),
    )
