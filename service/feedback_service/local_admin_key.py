"""The local secrets of an embedded installation, created on first start and kept in the data dir:
the admin key, and the secret that signs end-user feedback tokens."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

FILE_NAME = "admin.key"
TOKEN_SECRET_FILE_NAME = "token.secret"  # noqa: S105  # a file name, not a secret


def _ensure_secret(path: Path, make: Callable[[], str]) -> tuple[str, Path, bool]:
    if path.exists():
        return path.read_text().strip(), path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    # Owner-only from the first byte: whoever reads it holds the secret.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(value + "\n")
    return value, path, True


def ensure_local_admin_key(data_dir: Path) -> tuple[str, Path, bool]:
    """The key (it grants everything), its file, and whether it was created just now."""
    return _ensure_secret(data_dir / FILE_NAME, lambda: f"fbadmin_{secrets.token_urlsafe(32)}")


def ensure_local_token_secret(data_dir: Path) -> tuple[str, Path, bool]:
    """The secret that signs and verifies feedback tokens (FEEDBACK_TOKEN_SECRETS when none is set), its
    file, and whether it was created just now."""
    return _ensure_secret(data_dir / TOKEN_SECRET_FILE_NAME, lambda: secrets.token_urlsafe(48))
