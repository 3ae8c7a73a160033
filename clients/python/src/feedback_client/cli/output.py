"""Human or machine output: rich on a terminal, JSON (one object per line for streams) otherwise."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console

from feedback_proto.v1 import feedback_pb2

SOURCE_NAMES = {
    "user": feedback_pb2.SOURCE_USER,
    "reviewer": feedback_pb2.SOURCE_REVIEWER,
    "automated": feedback_pb2.SOURCE_AUTOMATED,
}
_SOURCE_BY_NUMBER = {number: name for name, number in SOURCE_NAMES.items()}
_THUMB_NAMES = {feedback_pb2.THUMB_UP: "up", feedback_pb2.THUMB_DOWN: "down"}


def machine_output(arguments: argparse.Namespace) -> bool:
    """JSON when asked for, or when stdout is not a terminal (rich honours TTY_COMPATIBLE=1 to force one)."""
    return bool(arguments.json) or not Console().is_terminal


def message_to_dict(message: Message) -> dict[str, Any]:
    """The proto3 JSON of a message, with every field (empty ones too) so each object has the same shape."""
    return MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,
    )


def write_json_line(value: object) -> None:
    """One JSON document on one line, flushed: readers of a stream see it at once."""
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def source_name(source: feedback_pb2.Source.ValueType) -> str:
    return _SOURCE_BY_NUMBER.get(source, "")


def thumb_name(thumb: feedback_pb2.Thumb.ValueType) -> str:
    return _THUMB_NAMES.get(thumb, "")


def value_text(feedback: feedback_pb2.Feedback) -> str:
    """The feedback's value as a person reads it: up, down, a number, a label, or empty."""
    kind = feedback.WhichOneof("value")
    if kind == "thumb":
        return thumb_name(feedback.thumb)
    if kind == "score":
        return f"{feedback.score:g}"
    if kind == "label":
        return feedback.label
    return ""


def time_text(timestamp: Timestamp) -> str:
    """UTC, to the second: ``2026-11-26 14:12:41``."""
    return timestamp.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")


def shortened(text: str, width: int) -> str:
    """``text`` on one line, at most ``width`` characters, ending in an ellipsis when cut."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"
