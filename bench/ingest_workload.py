"""What bench/ingest_bench.py sends, and how it reads processes' CPU and memory (Linux /proc).

The feedback mix (the same as bench/evaluation_bench.py loads): 60% thumbs from end users (SOURCE_USER,
an author from a pool of 50,000, so one vote per user applies; app metadata), 25% "helpfulness" 1-5
scores and 15% "topic" labels from 200 reviewers; 8% carry a comment, 2% a correction; 10 models x 5
versions. Every item gets its own trace id; the load generators set the feedback id client-side, as the
SDK does.
"""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from feedback_proto.v1 import feedback_pb2

MODELS = 10
VERSIONS = 5
USERS = 50_000
REVIEWERS = 200
LABELS = ("billing", "bug", "feature_request", "off_topic", "praise", "other")
COMMENTS = ("missed the refund policy", "was far too long", "cited a dead link", "was exactly what I needed")
CORRECTION = (
    "You can request a refund within 30 days of purchase from Settings > Billing > Refunds; refunds are paid "
    "to the original payment method within 5 business days."
)


@dataclass(frozen=True, slots=True)
class Draft:
    """One piece of feedback without its identity (feedback id, trace id)."""

    model: str
    model_version: str
    key: str
    thumb: int = 0  # feedback_pb2.Thumb number, for key "thumbs"
    score: float | None = None
    label: str = ""
    comment: str = ""
    correction: str = ""
    source: int = feedback_pb2.SOURCE_USER
    author: str = ""
    session_id: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


def drafts(seed: int) -> Iterator[Draft]:
    """An endless, reproducible stream of feedback in the mix of the module docstring."""
    rng = random.Random(seed)  # noqa: S311  (synthetic data, not security)
    while True:
        model = f"model-{rng.randrange(MODELS)}"
        version = f"v{rng.randrange(VERSIONS) + 1}"
        comment = f"The answer {rng.choice(COMMENTS)}" if rng.random() < 0.08 else ""
        correction = CORRECTION if rng.random() < 0.02 else ""
        session = f"session-{rng.randrange(200_000)}"
        draw = rng.random()
        if draw < 0.60:
            user = rng.randrange(USERS)
            yield Draft(
                model,
                version,
                "thumbs",
                thumb=feedback_pb2.THUMB_UP if rng.random() < 0.72 else feedback_pb2.THUMB_DOWN,
                comment=comment,
                correction=correction,
                source=feedback_pb2.SOURCE_USER,
                author=f"user-{user}",
                session_id=session,
                metadata={"app_version": f"3.2.{user % 10}", "platform": ("ios", "android", "web")[user % 3]},
            )
        elif draw < 0.85:
            yield Draft(
                model,
                version,
                "helpfulness",
                score=float(rng.randrange(1, 6)),
                comment=comment,
                correction=correction,
                source=feedback_pb2.SOURCE_REVIEWER,
                author=f"reviewer-{rng.randrange(REVIEWERS)}",
                session_id=session,
            )
        else:
            yield Draft(
                model,
                version,
                "topic",
                label=rng.choice(LABELS),
                comment=comment,
                correction=correction,
                source=feedback_pb2.SOURCE_REVIEWER,
                author=f"reviewer-{rng.randrange(REVIEWERS)}",
                session_id=session,
            )


def message(draft: Draft, *, project: str, feedback_id: str, trace_id: str) -> feedback_pb2.Feedback:
    """The feedback.v1 message a client sends for ``draft``."""
    item = feedback_pb2.Feedback(
        feedback_id=feedback_id,
        project=project,
        trace_id=trace_id,
        session_id=draft.session_id,
        model=draft.model,
        model_version=draft.model_version,
        key=draft.key,
        comment=draft.comment,
        correction=draft.correction,
        source=feedback_pb2.Source.ValueType(draft.source),
        author=draft.author,
        metadata=draft.metadata,
    )
    if draft.key == "thumbs":
        item.thumb = feedback_pb2.Thumb.ValueType(draft.thumb)
    elif draft.score is not None:
        item.score = draft.score
    else:
        item.label = draft.label
    return item


class Identities:
    """Unique feedback ids (UUID-shaped) and trace ids (32 hex digits), cheap enough for 100,000s a second.

    A random prefix per instance and a counter: unique across processes without a uuid4() per item.
    """

    def __init__(self) -> None:
        head = secrets.token_hex(10)
        self._id_prefix = f"{head[:8]}-{head[8:12]}-4{head[12:15]}-{'89ab'[int(head[15], 16) % 4]}{head[16:19]}-"
        self._trace_prefix = secrets.token_hex(10)
        self._next = 0

    def take(self) -> tuple[str, str]:
        """(feedback id, trace id), both new."""
        self._next += 1
        suffix = f"{self._next:012x}"
        return self._id_prefix + suffix, self._trace_prefix + suffix


# ---- Linux /proc ----------------------------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds all processes of the machine have used (/proc/stat: all but idle and iowait)."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def peak_rss_bytes(pid: int) -> int:
    """VmHWM of process ``pid``: its peak resident set since start or since :func:`reset_peak_rss`."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def reset_peak_rss(pid: int) -> bool:
    """Set VmHWM back to the current RSS (Linux >= 4.0, own processes); False where not possible."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True
