"""One process per embedded data dir.

The embedded engine does not stop a second process from opening the same data
dir, and two engines writing one dir corrupt it. An exclusive ``flock`` on a
file in the dir, held while any engine of this process uses it, makes the
second process fail at start with a clear error. Within one process the dir
may be opened again (the engine allows that), so the lock is counted.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

from feedback_service.domain.errors import StoreInUseError

LOCK_FILE_NAME = ".feedback-service.lock"

_held: dict[Path, tuple[int, int]] = {}  # data dir -> (lock file descriptor, users in this process)
_guard = threading.Lock()


def acquire(data_dir: Path) -> Path:
    """Lock ``data_dir`` for this process; returns the key to pass to :func:`release`."""
    key = data_dir.resolve()
    with _guard:
        if key in _held:
            descriptor, users = _held[key]
            _held[key] = (descriptor, users + 1)
            return key
        key.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(key / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise StoreInUseError(
                f"the data dir {key} is in use by another process: the embedded engine allows one process "
                "per data dir (stop the other one, or choose another --data-dir / FEEDBACK_DATA_DIR)"
            ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        _held[key] = (descriptor, 1)
        return key


def release(key: Path) -> None:
    with _guard:
        descriptor, users = _held[key]
        if users > 1:
            _held[key] = (descriptor, users - 1)
            return
        del _held[key]
        os.close(descriptor)  # closing the descriptor drops the flock
