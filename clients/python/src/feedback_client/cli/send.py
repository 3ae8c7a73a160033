"""``feedback send``: store one piece of feedback and print its id (or, for machines, the stored record)."""

from __future__ import annotations

import argparse

from feedback_client import Feedback, FeedbackContext, correct, label, score, thumbs_down, thumbs_up
from feedback_client.builders import DEFAULT_THUMBS_KEY
from feedback_client.cli.command import Command
from feedback_client.cli.connection import ConnectionOptions
from feedback_client.cli.exit_codes import ExitCode, UsageError
from feedback_client.cli.output import SOURCE_NAMES, machine_output, message_to_dict, write_json_line

EXAMPLES = """
A piece of feedback carries a value (--thumb, --score or --label), a --comment, a --correction, or
any of them together. --key names what is judged; --thumb defaults it to "thumbs" and its source to
user. Prints the stored feedback id, or the stored feedback as JSON (--json, or stdout not a terminal).

examples:
  feedback send --project demo --trace-id 4bf92f3577b34da6a3ce929d0e0e4736 --thumb up \\
      --model support-bot --model-version v7 --author user-17
  feedback send --project demo --trace-id 4bf92f3577b34da6a3ce929d0e0e4736 --key helpfulness --score 4 \\
      --source reviewer --author alice --comment "right, but long"
  feedback send --project demo --trace-id 4bf92f3577b34da6a3ce929d0e0e4736 --key topic --label billing \\
      --metadata app=web --metadata locale=de
  feedback send --project demo --trace-id 4bf92f3577b34da6a3ce929d0e0e4736 --key answer \\
      --correction "Refunds take 5 working days." --feedback-id review-42-answer --json
"""


def _pair(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return name, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace-id", required=True, help="trace id of the judged AI call")
    value = parser.add_argument_group("value (at most one)").add_mutually_exclusive_group()
    value.add_argument("--thumb", choices=("up", "down"), help="a thumbs-up or thumbs-down vote")
    value.add_argument("--score", type=float, help="a numeric score (any finite number)")
    value.add_argument("--label", help="a categorical label, e.g. off_topic")
    parser.add_argument("--key", help='what is judged, e.g. helpfulness (default "thumbs" with --thumb)')
    parser.add_argument("--comment", help="free-text comment")
    parser.add_argument("--correction", help="the right output")
    about = parser.add_argument_group("what the feedback is about and who gave it")
    about.add_argument("--model", default="", help="model that produced the output")
    about.add_argument("--model-version", default="", help="version of that model")
    about.add_argument("--span-id", default="", help="span id of the AI call")
    about.add_argument("--session-id", default="", help="conversation or session id")
    about.add_argument("--author", default="", help="id of the user, reviewer or program")
    about.add_argument(
        "--source", choices=sorted(SOURCE_NAMES), help="who gave it (default: user for --thumb, else unspecified)"
    )
    about.add_argument(
        "--metadata", type=_pair, action="append", default=[], metavar="KEY=VALUE", help="a metadata entry (repeatable)"
    )
    about.add_argument("--feedback-id", default="", help="idempotency key: resending the same id stores one copy")


def build_feedback(arguments: argparse.Namespace) -> Feedback:
    """The Feedback the options describe; UsageError when they describe none."""
    has_value = arguments.thumb is not None or arguments.score is not None or arguments.label is not None
    if not (has_value or arguments.comment or arguments.correction):
        raise UsageError("nothing to send: give --thumb, --score or --label, a --comment, or a --correction")
    key = arguments.key or (DEFAULT_THUMBS_KEY if arguments.thumb else "")
    if not key:
        raise UsageError('--key is required (only --thumb has a default key, "thumbs")')
    context: FeedbackContext = {
        "span_id": arguments.span_id,
        "model": arguments.model,
        "model_version": arguments.model_version,
        "session_id": arguments.session_id,
        "author": arguments.author,
        "comment": arguments.comment or "",
        "metadata": dict(arguments.metadata),
        "feedback_id": arguments.feedback_id,
    }
    if arguments.source:
        context["source"] = SOURCE_NAMES[arguments.source]
    trace_id: str = arguments.trace_id
    if arguments.thumb is not None:
        vote = thumbs_up if arguments.thumb == "up" else thumbs_down
        feedback = vote(trace_id, key=key, **context)
    elif arguments.score is not None:
        feedback = score(trace_id, key=key, value=arguments.score, **context)
    elif arguments.label is not None:
        feedback = label(trace_id, key=key, value=arguments.label, **context)
    else:
        feedback = correct(trace_id, key=key, correction="", **context)
    feedback.correction = arguments.correction or ""
    return feedback


async def run(arguments: argparse.Namespace, connection: ConnectionOptions) -> ExitCode:
    feedback = build_feedback(arguments)
    async with connection.open_client() as client:
        stored = await client.create(feedback)
    if machine_output(arguments):
        write_json_line(message_to_dict(stored))
    else:
        print(stored.feedback_id)
    return ExitCode.OK


COMMAND = Command(
    examples=EXAMPLES,
    add_arguments=add_arguments,
    run=run,
)
