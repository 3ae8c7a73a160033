"""Who is calling and what they may do: scopes, principals and the project rule.

The project of a call comes from its credential. A request may repeat that
project or leave it empty; naming another project is PERMISSION_DENIED. Only
the bootstrap admin key (FEEDBACK_ADMIN_KEY) spans projects; its requests
must name the project they act on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from feedback_client.tokens import TokenClaims
from feedback_service.domain.errors import PermissionDeniedError


class Scope(enum.Enum):
    INGEST = "ingest"  # create feedback
    ANNOTATE = "annotate"  # create, update and delete feedback (reviewers)
    READ = "read"  # get, list, stream, export, compare
    ADMIN = "admin"  # manage API keys


ALL_SCOPES = frozenset(Scope)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. ``project`` None means every project (bootstrap admin, or auth off);
    ``token`` is set for an end user holding a feedback token (it may only create feedback)."""

    key_id: str
    project: str | None
    scopes: frozenset[Scope]
    token: TokenClaims | None = None

    def project_for(self, requested: str) -> str:
        """The project a call acts on, checked against the credential."""
        if self.project is None:
            return requested  # validation requires it like any other field
        if requested and requested != self.project:
            raise PermissionDeniedError(
                f"this credential belongs to project {self.project!r}; it cannot act on project {requested!r}"
            )
        return self.project


# When auth is off (--insecure-no-auth): everything is allowed, the request names the project.
UNAUTHENTICATED_LOCAL = Principal(key_id="", project=None, scopes=ALL_SCOPES)
