"""Offline verification: a pure core (entries and observed frames in, report out),
loaders for stores and bundles, and report rendering."""

from .core import Finding, Report, inspect_camera
from .load import inspect_path, verify_path

__all__ = ["Finding", "Report", "inspect_camera", "inspect_path", "verify_path"]
