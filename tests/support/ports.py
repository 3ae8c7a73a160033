"""Loopback ports for tests that need a fixed port (a server restarted on it) or one nobody listens on."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback port that was free a moment ago: nothing listens there until a test starts something."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
