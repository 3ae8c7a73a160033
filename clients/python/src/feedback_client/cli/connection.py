"""Where the client commands connect and with which credential: the options every one of them takes."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from feedback_client import FeedbackClient
from feedback_client.cli.exit_codes import UsageError

DEFAULT_TARGET = "127.0.0.1:50051"
KEY_VARIABLES = ("FEEDBACK_API_KEY", "FEEDBACK_ADMIN_KEY")
# The local admin key that `feedback serve` writes into its data dir on the embedded engine.
FILE_NAME = "admin.key"
# A project key, as the server makes them: ``fbk_<key id>_<secret>``. It belongs to one project, so it
# implies the project; any other credential (the bootstrap admin key) must name one.
_PROJECT_KEY = re.compile(r"fbk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")

CREDENTIALS_HELP = f"""
credentials, first found: --api-key-file, $FEEDBACK_API_KEY, $FEEDBACK_ADMIN_KEY, then the local admin
key <data dir>/{FILE_NAME} that `feedback serve` (`make run`) writes. A project key implies its project;
the admin key needs --project (or $FEEDBACK_PROJECT).
"""


@dataclass(frozen=True, slots=True)
class Credential:
    """The API key to send (None: send none) and where it came from, for error messages."""

    key: str | None
    origin: str

    @property
    def is_project_key(self) -> bool:
        return self.key is not None and _PROJECT_KEY.fullmatch(self.key) is not None


def find_credential(*, key_file: Path | None, data_dir: Path, environ: Mapping[str, str]) -> Credential:
    """The first of: the key file, $FEEDBACK_API_KEY, $FEEDBACK_ADMIN_KEY, ``data_dir``/admin.key."""
    if key_file is not None:
        try:
            key = key_file.read_text().strip()
        except OSError as error:
            raise UsageError(f"--api-key-file: cannot read {key_file}: {error.strerror}") from error
        if not key:
            raise UsageError(f"--api-key-file: {key_file} is empty")
        return Credential(key, str(key_file))
    for variable in KEY_VARIABLES:
        if environ.get(variable):
            return Credential(environ[variable], f"${variable}")
    local = data_dir / FILE_NAME
    if local.is_file():
        return Credential(local.read_text().strip(), str(local))
    return Credential(None, f"none (no --api-key-file, {', '.join('$' + v for v in KEY_VARIABLES)} or {local})")


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--target",
        default=os.environ.get("FEEDBACK_TARGET") or DEFAULT_TARGET,
        help=f"server address (default $FEEDBACK_TARGET, else {DEFAULT_TARGET})",
    )
    group.add_argument(
        "--project",
        default=os.environ.get("FEEDBACK_PROJECT", ""),
        help="project to act on (default $FEEDBACK_PROJECT); required unless the key is a project key",
    )
    group.add_argument("--api-key-file", type=Path, metavar="PATH", help="read the API key from this file")
    group.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("FEEDBACK_DATA_DIR") or "data"),
        help=f"where to find the local admin key {FILE_NAME} (default $FEEDBACK_DATA_DIR, else ./data)",
    )
    group.add_argument("--tls", action="store_true", help="connect with TLS, verifying the server (system roots)")
    group.add_argument("--ca-file", type=Path, metavar="PEM", help="verify the server against this CA (implies --tls)")
    group.add_argument("--cert-file", type=Path, metavar="PEM", help="client certificate for mutual TLS")
    group.add_argument("--key-file", type=Path, metavar="PEM", help="client private key for mutual TLS")
    group.add_argument(
        "--timeout", type=_seconds, metavar="SECONDS", help="deadline of each call (default 10; streams: none)"
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _pem(flag: str, path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        raise UsageError(f"{flag}: cannot read {path}: {error.strerror}") from error


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    target: str
    project: str
    credential: Credential
    tls: bool
    root_certificates: bytes | None
    client_certificate: bytes | None
    client_key: bytes | None
    timeout_s: float | None

    @classmethod
    def from_arguments(cls, arguments: argparse.Namespace, environ: Mapping[str, str]) -> ConnectionOptions:
        if (arguments.cert_file is None) != (arguments.key_file is None):
            raise UsageError("--cert-file and --key-file: mutual TLS needs both")
        return cls(
            target=arguments.target,
            project=arguments.project,
            credential=find_credential(key_file=arguments.api_key_file, data_dir=arguments.data_dir, environ=environ),
            tls=arguments.tls,
            root_certificates=_pem("--ca-file", arguments.ca_file),
            client_certificate=_pem("--cert-file", arguments.cert_file),
            client_key=_pem("--key-file", arguments.key_file),
            timeout_s=arguments.timeout,
        )

    def check_project(self) -> None:
        """A usage error, before any call, when nothing names the project the command acts on."""
        if self.project or self.credential.is_project_key:
            return
        missing = "--project is required (or $FEEDBACK_PROJECT)"
        if self.credential.key is None:
            raise UsageError(missing)
        raise UsageError(
            f"{missing}: only a project key implies its project, and the key from {self.credential.origin} is not one"
        )

    def open_client(self) -> FeedbackClient:
        """A client for this connection; it must be opened and closed on the running event loop."""
        return FeedbackClient(
            self.target,
            api_key=self.credential.key,
            project=self.project,
            tls=self.tls,
            root_certificates=self.root_certificates,
            client_certificate=self.client_certificate,
            client_key=self.client_key,
            timeout_s=self.timeout_s,
        )
