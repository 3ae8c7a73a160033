"""The local admin key of an embedded installation: created on first start, kept in the data dir."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

FILE_NAME = "admin.key"


def ensure_local_admin_key(data_dir: Path) -> tuple[str, Path, bool]:
    """The key, its file, and whether it was created just now."""
    path = data_dir / FILE_NAME
    if path.exists():
        return path.read_text().strip(), path, False
    data_dir.mkdir(parents=True, exist_ok=True)
    key = f"fbadmin_{secrets.token_urlsafe(32)}"
    # Owner-only from the first byte: the key grants everything.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")
    return key, path, True
