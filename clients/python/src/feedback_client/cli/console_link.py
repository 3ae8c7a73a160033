"""``feedback console-link``: a signed, expiring link to the web console for one reviewer (or a read-only one)."""

from __future__ import annotations

import argparse
from datetime import timedelta

import grpc
from rich.console import Console

from feedback_client import FeedbackClient, FeedbackError
from feedback_client.cli.command import Command
from feedback_client.cli.connection import ConnectionOptions
from feedback_client.cli.exit_codes import ExitCode, UsageError
from feedback_client.cli.filters import parse_duration
from feedback_client.cli.output import machine_output, write_json_line

EXAMPLES = """
Prints the console URL to hand to the person (with --json, or when stdout is not a terminal, one JSON
object with url, token and expire_time). Whoever holds the link acts as that reviewer, in that project
(and queue), until it expires: send it privately. --queue takes a queue's id or name. Needs a key with
the annotate or admin scope; rotating the server's token secrets revokes every link.

examples:
  feedback console-link --project demo --reviewer alice
  feedback console-link --project demo --reviewer alice --queue "support-bot v9 thumbs-down" --ttl 2d
  feedback console-link --project demo --reviewer team-lead --read --ttl 30d --json | jq -r .url
"""

_MAX_TTL = timedelta(days=30)


def _ttl(text: str) -> timedelta:
    ttl = parse_duration(text)
    if ttl > _MAX_TTL:
        raise argparse.ArgumentTypeError(f"at most 30d, got {text!r}")
    return ttl


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reviewer", required=True, help="who the link is for: it claims and submits as them only")
    parser.add_argument("--queue", metavar="QUEUE", help="bind the link to this queue (its id or name)")
    parser.add_argument("--read", action="store_true", help="a read-only dashboard link: nothing that writes or claims")
    parser.add_argument(
        "--ttl",
        type=_ttl,
        default=timedelta(days=7),
        metavar="DURATION",
        help="how long it works, e.g. 12h (default 7d, at most 30d)",
    )


async def queue_id_of(client: FeedbackClient, queue: str) -> str:
    """The id of the project's queue whose id or name is ``queue``: NOT_FOUND when none, a usage error when
    several queues have that name."""
    try:
        queues = await client.list_queues()
    except FeedbackError as error:
        if error.code != grpc.StatusCode.PERMISSION_DENIED:
            raise
        return queue  # an admin-only key may not list queues: the server checks the id itself
    by_id = [q.queue_id for q in queues if q.queue_id == queue]
    if by_id:
        return by_id[0]
    named = [q.queue_id for q in queues if q.name == queue]
    if len(named) == 1:
        return named[0]
    if named:
        raise UsageError(f"--queue: {len(named)} queues are named {queue!r}; give one of their ids: {', '.join(named)}")
    raise FeedbackError(grpc.StatusCode.NOT_FOUND, f"the project has no queue with the id or name {queue!r}")


async def run(arguments: argparse.Namespace, connection: ConnectionOptions) -> ExitCode:
    async with connection.open_client() as client:
        queue_id = await queue_id_of(client, arguments.queue) if arguments.queue else None
        link = await client.create_console_link(
            reviewer=arguments.reviewer, queue=queue_id, read=arguments.read, ttl=arguments.ttl
        )
    expires = link.expire_time.strftime("%Y-%m-%d %H:%M:%S UTC")
    if machine_output(arguments):
        write_json_line(
            {
                "url": link.url,
                "token": link.token,
                "expire_time": link.expire_time.isoformat().replace("+00:00", "Z"),
                "reviewer": arguments.reviewer,
                "queue_id": queue_id or "",
                "read": arguments.read,
            }
        )
        return ExitCode.OK
    print(link.url or link.token)
    what = "a read-only link" if arguments.read else "a reviewing link"
    where = f" for queue {queue_id}" if queue_id else ""
    note = f"{what} for {arguments.reviewer}{where}, until {expires}: whoever holds it acts as them; send it privately"
    if not link.url:
        note += " (the server has no public URL, so this is the token: send it as 'authorization: Bearer <token>')"
    Console(stderr=True).print(note, style="dim", highlight=False, markup=False)
    return ExitCode.OK


COMMAND = Command(
    examples=EXAMPLES,
    add_arguments=add_arguments,
    run=run,
)
