"""When the recorder hands signing over to a new key (docs/FORMAT.md section 12.3).

Two ways, both for real operators:

- **SIGHUP**: replace the key file (and certificate) at the paths given with ``--key``
  and ``--cert`` (e.g. ``mv new/device.key device.key``), then ``kill -HUP`` the
  recorder: at the next keyframe it reads them again and, when the key changed, rotates
  to it. A key that cannot be read (wrong passphrase, half-written file) is logged and
  the old key stays in force: recording never stops for it.
- **--rotate-key NEW [--rotate-cert CERT] [--rotate-after SECONDS]**: start with the
  old key and rotate to the new one at the first keyframe (or after SECONDS of footage),
  e.g. when the old key is to be retired, or a key moves into a hardware token. The new
  key is then remembered in ``STORE/recorder.json`` for exports.

The rotation itself is :meth:`vidproof.chain.Chain.rotate`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import Error
from ..keys import Signer, load_signer

log = logging.getLogger(__name__)


class KeyRotation:
    """Asked by the capture worker at each keyframe: a new signer, or None."""

    def __init__(self, key: Path | str, cert: Path | None, passphrase: bytes | None,
                 store: Path, rotate_to: Signer | None = None,
                 rotate_key: Path | str | None = None, rotate_cert: Path | None = None,
                 rotate_after_s: float = 0.0) -> None:
        self.key, self.cert, self.passphrase = key, cert, passphrase
        self.store = store
        self.rotate_to = rotate_to
        self.rotate_key, self.rotate_cert = rotate_key, rotate_cert
        self.rotate_after_ns = int(rotate_after_s * 1e9)
        self.reload_requested = False
        self._first_ns: int | None = None

    def request_reload(self) -> None:
        """SIGHUP: read the key files again at the next keyframe."""
        self.reload_requested = True

    def __call__(self, utc_ns: int, current: Signer) -> tuple[Signer, str] | None:
        if self._first_ns is None:
            self._first_ns = utc_ns
        if self.rotate_to is not None and utc_ns - self._first_ns >= self.rotate_after_ns:
            new, self.rotate_to = self.rotate_to, None
            if self.rotate_key is not None:
                from ..store import remember_recorder_key

                remember_recorder_key(self.store, Path(self.rotate_key))
                self.key, self.cert = self.rotate_key, self.rotate_cert
            log.warning("key rotation: key %s… introduces key %s…", current.key_id[:16],
                        new.key_id[:16])
            return new, "operator: --rotate-key"
        if not self.reload_requested:
            return None
        self.reload_requested = False
        try:
            new = load_signer(self.key, passphrase=self.passphrase, cert=self.cert)
        except Error as exc:
            log.warning("SIGHUP: cannot read the key again (%s); key %s… stays in force",
                        exc, current.key_id[:16])
            return None
        if new.key_id == current.key_id:
            log.warning("SIGHUP: the key at %s is unchanged (%s…)", self.key, new.key_id[:16])
            return None
        log.warning("key rotation on SIGHUP: key %s… introduces key %s…",
                    current.key_id[:16], new.key_id[:16])
        return new, "operator: SIGHUP (key file replaced)"
