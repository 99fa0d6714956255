"""Exceptions for people: each message says what was wrong and what to do.

The CLI prints an :class:`NLFSError` as one line and exits non-zero; anything else is a bug.
"""


class NLFSError(Exception):
    """Base of every error caused by user input, configuration or environment."""


class ConfigError(NLFSError, ValueError):
    """A configuration file or option that is missing, malformed or out of range."""


class DataError(NLFSError):
    """A dataset that cannot be found or read."""
