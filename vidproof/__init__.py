"""vidproof: forensic video-surveillance recording and certification."""

__version__ = "0.1.0"

from .errors import CouldNotVerify, Error, EvidenceError, SourceError, UsageError  # noqa: E402

__all__ = ["CouldNotVerify", "Error", "EvidenceError", "SourceError", "UsageError", "__version__"]
