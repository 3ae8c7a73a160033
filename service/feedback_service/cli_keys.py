"""``feedback keys create|list|revoke``: manage API keys through a running server's ApiKeyService."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import grpc

from feedback_proto.v1 import api_keys_pb2 as pb
from feedback_proto.v1 import api_keys_pb2_grpc
from feedback_service.cli_client.connection import find_credential
from feedback_service.local_admin_key import FILE_NAME

SCOPES = {"ingest": pb.SCOPE_INGEST, "annotate": pb.SCOPE_ANNOTATE, "read": pb.SCOPE_READ, "admin": pb.SCOPE_ADMIN}
_SCOPE_NAMES = {number: name for name, number in SCOPES.items()}

EXAMPLES = """
credentials: $FEEDBACK_API_KEY (a key with the admin scope), else $FEEDBACK_ADMIN_KEY,
else the local admin key in <data dir>/admin.key (see `feedback serve`).

examples:
  feedback keys create --project demo --scope ingest --name "web app"
  feedback keys create --project demo --scope read --scope annotate --json
  feedback keys list --project demo
  feedback keys revoke 3f2a9c0d1e4b5a67
"""


def add_key_commands(keys: argparse.ArgumentParser) -> None:
    keys.add_argument("--target", default="127.0.0.1:50051", help="server address (default 127.0.0.1:50051)")
    keys.add_argument("--data-dir", type=Path, default=Path("data"), help="where to find the local admin key")
    keys.add_argument("--json", action="store_true", help="print JSON instead of text")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key; it is printed once, never stored in plain text")
    create.add_argument("--project", default="", help="project of the key (required with the bootstrap admin key)")
    create.add_argument("--name", default="", help="what the key is for")
    create.add_argument("--scope", action="append", choices=sorted(SCOPES), required=True, dest="scopes")
    listing = actions.add_parser("list", help="list a project's keys (never their secrets)")
    listing.add_argument("--project", default="")
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")


def _credential(data_dir: Path) -> str:
    credential = find_credential(key_file=None, data_dir=data_dir, environ=os.environ)
    if credential.key is None:
        local = data_dir / FILE_NAME
        raise SystemExit(f"feedback keys: no credential: set FEEDBACK_API_KEY or FEEDBACK_ADMIN_KEY (no {local})")
    return credential.key


def _described(key: pb.ApiKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "project": key.project,
        "name": key.name,
        "scopes": [_SCOPE_NAMES.get(s, str(s)) for s in key.scopes],
        "create_time": key.create_time.ToJsonString(),
        "revoke_time": key.revoke_time.ToJsonString() if key.HasField("revoke_time") else None,
    }


def run_key_command(arguments: argparse.Namespace) -> int:
    """Exit code 0 on success, 1 when the server refuses (its code and message are printed)."""
    metadata = (("authorization", f"Bearer {_credential(arguments.data_dir)}"),)
    with grpc.insecure_channel(arguments.target) as channel:
        stub = api_keys_pb2_grpc.ApiKeyServiceStub(channel)
        try:
            if arguments.action == "create":
                request = pb.CreateApiKeyRequest(
                    project=arguments.project, name=arguments.name, scopes=[SCOPES[s] for s in arguments.scopes]
                )
                created = stub.CreateApiKey(request, metadata=metadata, timeout=10)
                output: Any = {**_described(created.api_key), "key": created.key}
                text = f"{created.key}\n(key id {created.api_key.key_id}; shown only now: store it safely)"
            elif arguments.action == "list":
                listed = stub.ListApiKeys(
                    pb.ListApiKeysRequest(project=arguments.project), metadata=metadata, timeout=10
                )
                output = [_described(k) for k in listed.api_keys]
                text = (
                    "\n".join(
                        f"{k['key_id']}  {k['project']:<20} {','.join(k['scopes']):<28} "
                        f"{'revoked ' + k['revoke_time'] if k['revoke_time'] else 'active':<36} {k['name']}"
                        for k in output
                    )
                    or "(no keys)"
                )
            else:
                revoked = stub.RevokeApiKey(
                    pb.RevokeApiKeyRequest(key_id=arguments.key_id), metadata=metadata, timeout=10
                )
                output = _described(revoked.api_key)
                text = f"revoked {revoked.api_key.key_id}"
        except grpc.RpcError as error:
            print(f"feedback keys {arguments.action}: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    print(json.dumps(output, indent=2) if arguments.json else text)
    return 0
