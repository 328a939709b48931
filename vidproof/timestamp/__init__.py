"""Trusted time for the recorder: RFC 3161 time-stamp tokens over checkpoints (tsa.py)
and clock discipline against NTP servers (ntp.py, clock.py). docs/FORMAT.md sections 13-14.
The verifier's side is vidproof/verify/timestamps.py."""
