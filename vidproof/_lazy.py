"""Modules imported on first use, not at start-up.

``vidproof record`` and ``vidproof verify`` run as short processes, so their start-up
counts: ``cryptography.x509`` and ``asn1crypto`` alone take about as long to import as
PyAV, and are needed only when certificates, CRLs or time-stamp tokens are actually
met. A module that needs them binds a stand-in::

    if TYPE_CHECKING:
        from cryptography import x509
    else:
        x509 = lazy_module("cryptography.x509")

and uses ``x509.Certificate`` etc. as before: the first attribute read imports the real
module (through the import system, so under its lock: safe from any thread) and later
reads of that attribute are served from the stand-in itself. ``lazy_module(name, attr)``
stands in for one attribute of the module instead (``NameOID``: ``NameOID.COMMON_NAME``).
"""

from __future__ import annotations

import importlib
from typing import Any


class _LazyModule:
    __slots__ = ("__dict__", "_lazy_name", "_lazy_attr")

    def __init__(self, name: str, attr: str | None) -> None:
        self._lazy_name = name
        self._lazy_attr = attr

    def __getattr__(self, attr: str) -> Any:  # called only for attributes not cached yet
        target = importlib.import_module(self._lazy_name)
        if self._lazy_attr is not None:
            target = getattr(target, self._lazy_attr)
        value = getattr(target, attr)
        self.__dict__[attr] = value
        return value

    def __repr__(self) -> str:
        suffix = "" if self._lazy_attr is None else f".{self._lazy_attr}"
        return f"<lazy {self._lazy_name}{suffix}>"


def lazy_module(name: str, attr: str | None = None) -> Any:
    """A stand-in for module ``name`` (or its attribute ``attr``) that imports the module
    when one of its attributes is read."""
    return _LazyModule(name, attr)
