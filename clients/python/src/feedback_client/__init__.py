"""Python client of the feedback service (feedback.v1)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from feedback_client.client import FeedbackClient
from feedback_client.errors import FeedbackError, FieldViolation
from feedback_proto.v1.feedback_pb2 import Feedback, Source, Thumb

try:
    __version__ = version("feedback-client")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

__all__ = ["Feedback", "FeedbackClient", "FeedbackError", "FieldViolation", "Source", "Thumb", "__version__"]
