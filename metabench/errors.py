"""Exception types. Every error says what was wrong and how to fix it."""

from __future__ import annotations


class MetabenchError(Exception):
    """Base class of every error metabench raises on purpose."""


class UnknownIdError(MetabenchError, KeyError):
    """An env or learner id that is not registered (the message suggests close matches)."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


class RegistrationError(MetabenchError, ValueError):
    """Registering an id twice without ``override=True``, or a malformed id."""


class ConfigError(MetabenchError, ValueError):
    """An impossible configuration: ways, shots, queries, splits, unknown keys."""


class DataError(MetabenchError, OSError):
    """Dataset files missing, corrupt, truncated or failing their checksum."""


class ChecksumError(DataError):
    """A file whose digest does not match the published one."""


class UnsafeArchiveError(DataError):
    """An archive member that would land outside the extraction directory."""
