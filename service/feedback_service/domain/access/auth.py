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
from feedback_service.domain.access.feedback_tokens import ConsoleLinkClaims
from feedback_service.domain.errors import OutsideBindingError, PermissionDeniedError


class Scope(enum.Enum):
    INGEST = "ingest"  # create feedback
    ANNOTATE = "annotate"  # create, update and delete feedback (reviewers)
    READ = "read"  # get, list, stream, export, compare
    ADMIN = "admin"  # manage API keys


ALL_SCOPES = frozenset(Scope)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. ``project`` None means every project (bootstrap admin, or auth off);
    ``token`` is set for an end user holding a feedback token (it may only create feedback); ``console``
    for a person holding a console link (bound to a reviewer id and maybe a queue)."""

    key_id: str
    project: str | None
    scopes: frozenset[Scope]
    token: TokenClaims | None = None
    console: ConsoleLinkClaims | None = None

    def reviewer_for(self, requested: str, *, field: str = "reviewer") -> str:
        """The reviewer a call acts as: a console link's own (empty takes it; another is refused), else
        the request's."""
        if self.console is None:
            return requested
        if requested and requested != self.console.reviewer:
            raise OutsideBindingError(
                field,
                f"{field}: this console link is reviewer {self.console.reviewer!r}'s; it cannot act as {requested!r}",
            )
        return self.console.reviewer

    @property
    def bound_reviewer(self) -> str | None:
        """The reviewer a console link binds the call to, or None (an API key: the request says)."""
        return None if self.console is None else self.console.reviewer

    @property
    def bound_queue(self) -> str | None:
        """The queue a console link binds the call to, or None (any queue of the project)."""
        return (self.console.queue_id or None) if self.console is not None else None

    def queue_for(self, requested: str, *, field: str = "queue_id") -> str:
        """The queue a call acts on: a bound link's queue (empty takes it; another is refused), else the
        request's."""
        bound = self.bound_queue
        if bound is None:
            return requested
        if requested and requested != bound:
            raise OutsideBindingError(
                field, f"{field}: this console link is for queue {bound!r}; it cannot act on queue {requested!r}"
            )
        return bound

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
