"""Console links: what a person opens to review (or to read dashboards) in the service's web console.

Mint one with :meth:`FeedbackClient.create_console_link` (an API key with the annotate or the admin
scope). The link is a signed, expiring credential bound to the project, one reviewer id and optionally
one queue; rotating the server's token secrets revokes every link.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["ConsoleLink"]


@dataclass(frozen=True, slots=True)
class ConsoleLink:
    """A minted console link."""

    url: str  # <FEEDBACK_PUBLIC_URL>/#link=<token>: hand this to the person ('' if the server has no HTTP face)
    token: str  # the credential itself ("fbc1...."), sent as "authorization: Bearer <token>"
    expire_time: datetime  # when the link stops working (UTC)
