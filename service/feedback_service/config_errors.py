"""The error of a setting that cannot be used, shared by the configuration and what it configures
(tracing among them), so those parts need not import the configuration."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the flag or variable."""
