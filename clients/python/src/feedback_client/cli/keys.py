"""``feedback keys create|list|revoke``: API keys, through the SDK and a key with the admin scope."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from feedback_client.cli.command import Command
from feedback_client.cli.commands import add_common_arguments, describe
from feedback_client.cli.connection import ConnectionOptions
from feedback_client.cli.exit_codes import ExitCode
from feedback_client.cli.output import machine_output, time_text, write_json_line
from feedback_proto.v1 import api_keys_pb2 as pb

SCOPES = {"ingest": pb.SCOPE_INGEST, "annotate": pb.SCOPE_ANNOTATE, "read": pb.SCOPE_READ, "admin": pb.SCOPE_ADMIN}
_SCOPE_NAMES = {number: name for name, number in SCOPES.items()}
COLUMNS = ("key id", "project", "name", "scopes", "created (UTC)", "revoked (UTC)")

EXAMPLES = """
create prints the new key once (it is stored only as a hash): on a terminal the key on its own line,
else (or with --json) one JSON object with the key and its record. list prints a table with a header
row, or one JSON object per key. revoke takes a key id (the part after fbk_), as list shows it;
an unknown id exits 4.

examples:
  feedback keys create --project demo --scope ingest --name "web app"
  feedback keys create --project demo --scope read --scope annotate --json
  feedback keys list --project demo
  feedback keys revoke 3f2a9c0d1e4b5a67
"""


def _needs_project(arguments: argparse.Namespace) -> bool:
    return bool(arguments.action != "revoke")


ACTIONS = {
    "create": "create a key of a project with the given scopes; it is printed once, never stored in plain text",
    "list": "list a project's keys, active and revoked (never their secrets)",
    "revoke": "revoke a key by its id; it is refused from then on",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    parsers = {name: actions.add_parser(name, help=summary) for name, summary in ACTIONS.items()}
    create = parsers["create"]
    create.add_argument("--name", default="", help="what the key is for")
    create.add_argument(
        "--scope", action="append", choices=sorted(SCOPES), required=True, dest="scopes", help="repeatable"
    )
    parsers["revoke"].add_argument("key_id", metavar="KEY_ID", help="the key id, as `feedback keys list` shows it")
    for name, action in parsers.items():
        describe(action, ACTIONS[name], EXAMPLES)
        add_common_arguments(action)  # after the action: `feedback keys list --project demo --json`
        action.set_defaults(usage_parser=action)


def described(key: pb.ApiKey) -> dict[str, Any]:
    """A key's record as JSON: scopes by name, times in RFC 3339 (revoke_time null while active)."""
    return {
        "key_id": key.key_id,
        "project": key.project,
        "name": key.name,
        "scopes": [_SCOPE_NAMES.get(s, str(s)) for s in key.scopes],
        "create_time": key.create_time.ToJsonString(),
        "revoke_time": key.revoke_time.ToJsonString() if key.HasField("revoke_time") else None,
    }


def row(key: pb.ApiKey) -> tuple[str, ...]:
    """One table row: the columns of COLUMNS."""
    scopes = ",".join(_SCOPE_NAMES.get(s, str(s)) for s in key.scopes)
    revoked = time_text(key.revoke_time) if key.HasField("revoke_time") else ""
    return (key.key_id, key.project, key.name, scopes, time_text(key.create_time), revoked)


def table(keys: list[pb.ApiKey]) -> Table:
    view = Table(*COLUMNS, header_style="bold")
    view.columns[0].no_wrap = True  # ids are copied: never wrapped
    for key in keys:
        view.add_row(*map(Text, row(key)))  # Text: names are shown as they are, never as markup
    return view


async def run(arguments: argparse.Namespace, connection: ConnectionOptions) -> ExitCode:
    machine = machine_output(arguments)
    async with connection.open_client() as client:
        if arguments.action == "create":
            request = pb.CreateApiKeyRequest(name=arguments.name, scopes=[SCOPES[s] for s in arguments.scopes])
            created = await client.create_api_key(request)
            if machine:
                write_json_line({**described(created.api_key), "key": created.key})
            else:
                print(created.key)
                Console(stderr=True).print(
                    f"key id {created.api_key.key_id} of project {created.api_key.project}: shown only now, "
                    "store it safely",
                    style="dim",
                    highlight=False,
                    markup=False,
                )
        elif arguments.action == "list":
            keys = list((await client.list_api_keys(pb.ListApiKeysRequest())).api_keys)
            if machine:
                for key in keys:
                    write_json_line(described(key))
            else:
                console = Console()
                if keys:
                    console.print(table(keys))
                console.print(f"{len(keys)} key{'' if len(keys) == 1 else 's'}", style="dim", highlight=False)
        else:
            revoked = await client.revoke_api_key(arguments.key_id)
            if machine:
                write_json_line(described(revoked))
            else:
                print(f"revoked {revoked.key_id} ({revoked.name or 'no name'}, project {revoked.project})")
    return ExitCode.OK


COMMAND = Command(
    examples=EXAMPLES,
    add_arguments=add_arguments,
    run=run,
    needs_project=_needs_project,
    own_common_arguments=True,
)
