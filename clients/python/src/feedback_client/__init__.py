"""Python SDK of the feedback service (feedback.v1): send feedback on AI outputs and read it back."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from feedback_client.batching import BatchingOptions, BatchStats
from feedback_client.builders import FeedbackContext, comment, correct, label, score, thumbs_down, thumbs_up
from feedback_client.client import FeedbackClient
from feedback_client.connection import Connection, Deadlines
from feedback_client.console_links import ConsoleLink
from feedback_client.errors import FeedbackError, FieldViolation
from feedback_client.retry import RetryPolicy
from feedback_client.sync_client import SyncFeedbackClient
from feedback_proto.v1.feedback_pb2 import Feedback, Source, Thumb

try:
    __version__ = version("feedback-client")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

__all__ = [
    "BatchStats",
    "BatchingOptions",
    "Connection",
    "ConsoleLink",
    "Deadlines",
    "Feedback",
    "FeedbackClient",
    "FeedbackContext",
    "FeedbackError",
    "FieldViolation",
    "RetryPolicy",
    "Source",
    "SyncFeedbackClient",
    "Thumb",
    "__version__",
    "comment",
    "correct",
    "label",
    "score",
    "thumbs_down",
    "thumbs_up",
]
