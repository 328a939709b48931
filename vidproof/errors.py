"""One root error, two families: the evidence is bad, or we could not check it.

Catching :class:`Error` fails closed: callers that do not distinguish the two
families treat both as "not verified".
"""

from __future__ import annotations


class Error(Exception):
    """Root of every error vidproof raises on purpose."""


class CouldNotVerify(Error):
    """Verification could not be carried out: unreadable, unsupported or malformed input."""


class UsageError(CouldNotVerify):
    """The caller asked for something that makes no sense (bad flag value, missing file)."""


class EvidenceError(Error):
    """The evidence was checked and is not authentic or not complete."""

    def __init__(self, message: str, report: object | None = None) -> None:
        super().__init__(message)
        self.report = report


class SourceError(Error):
    """A capture source could not be opened or read."""


class KeyFormatError(UsageError):
    """A key file is not in the expected format."""
