"""A digest of what a create request says, so a retry can be told from a different payload."""

from __future__ import annotations

import hashlib

from feedback_service.domain.model import Feedback


def create_fingerprint(feedback: Feedback) -> str:
    """Digest of every caller-supplied field of a validated, normalised create.

    Stored with the row and never changed by updates, so a create retried after
    an update is still recognised as the same create.
    """
    value = feedback.value
    # repr() of a tuple of str, int and float is exact (floats round-trip) and
    # several times cheaper than JSON on this per-item path.
    canonical = repr(
        (
            feedback.project,
            feedback.feedback_id,
            feedback.trace_id,
            feedback.span_id,
            feedback.session_id,
            feedback.model,
            feedback.model_version,
            feedback.key,
            int(value.kind),
            int(value.thumb),
            value.score,
            value.label,
            feedback.comment,
            feedback.correction,
            int(feedback.source),
            feedback.author,
            tuple(sorted(feedback.metadata.items())),
        )
    )
    return hashlib.blake2b(canonical.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
