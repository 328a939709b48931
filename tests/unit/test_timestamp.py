"""RFC 3161 tokens, the timestamp entry and the SNTP client, without the recorder.

Tokens are made by OpenSSL's own TSA (``openssl ts -reply``) from requests built by
vidproof, and OpenSSL's ``openssl ts -verify`` is the independent peer that checks
them; certificates are made by ``openssl`` (tests/servers/tsa_server.py).
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import time
from pathlib import Path

import pytest
from asn1crypto import cms, tsp

from tests.servers.tsa_server import make_pki, write_config
from vidproof.errors import UsageError
from vidproof.model import (
    FORMAT,
    GENESIS,
    Checkpoint,
    RecordError,
    TimestampEntry,
    checkpoint_to_json,
    entry_from_json,
    record_to_json,
)
from vidproof.timestamp.clock import ClockSettings, ClockWatch
from vidproof.timestamp.ntp import NtpError, Server, _from_ntp, _to_ntp, query
from vidproof.timestamp.tsa import build_request, read_response
from vidproof.verify.timestamps import (
    Stamp,
    TokenError,
    TokenMismatch,
    TokenUntrusted,
    check_timestamps,
    inspect_token,
    parse_anchors_pem,
)


class OpenSslTsa:
    """``openssl ts -reply`` on files: a real TSA without the HTTP part."""

    def __init__(self, work: Path, key_type: str = "ec") -> None:
        self.pki = make_pki(work / "pki", key_type)
        self.work = work
        self.config = write_config(work, self.pki["tsa.pem"], self.pki["tsa.key"],
                                   self.pki["ca.pem"])
        self.anchors = tuple(parse_anchors_pem(self.pki["ca.pem"].read_bytes()))
        self.n = 0

    def reply(self, imprint: bytes, nonce: int = 12345) -> bytes:
        self.n += 1
        q, r = self.work / f"q{self.n}.tsq", self.work / f"r{self.n}.tsr"
        q.write_bytes(build_request(imprint, nonce))
        subprocess.run(["openssl", "ts", "-reply", "-config", str(self.config), "-queryfile",
                        str(q), "-out", str(r)], check=True, capture_output=True, timeout=30)
        return r.read_bytes()

    def token(self, imprint: bytes, nonce: int = 12345) -> bytes:
        token, _ = read_response(self.reply(imprint, nonce), imprint, nonce, self.anchors)
        return token


@pytest.fixture(scope="module")
def ec_tsa(tmp_path_factory: pytest.TempPathFactory) -> OpenSslTsa:
    return OpenSslTsa(tmp_path_factory.mktemp("tsa-ec"))


def test_request_is_a_valid_timestampreq() -> None:
    imprint = hashlib.sha256(b"x").digest()
    req = tsp.TimeStampReq.load(build_request(imprint, 77), strict=True)
    assert req["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha256"
    assert req["message_imprint"]["hashed_message"].native == imprint
    assert req["nonce"].native == 77 and req["cert_req"].native is True


def test_openssl_token_verifies_both_ways(ec_tsa: OpenSslTsa) -> None:
    imprint = hashlib.sha256(b"checkpoint bytes").digest()
    before = time.time_ns()
    reply = ec_tsa.reply(imprint, 99)
    token, info = read_response(reply, imprint, 99, ec_tsa.anchors)
    assert info.anchored and info.imprint == imprint and info.nonce == 99
    assert before - 2_000_000_000 <= info.gen_time_ns <= time.time_ns() + 2_000_000_000
    assert info.accuracy_ns == 1_000_000_000 and "Time-Stamp Authority" in info.signer
    # The independent peer accepts the same reply for the same data.
    (ec_tsa.work / "peer.tsr").write_bytes(reply)
    peer = subprocess.run(
        ["openssl", "ts", "-verify", "-digest", imprint.hex(), "-in",
         str(ec_tsa.work / "peer.tsr"), "-CAfile", str(ec_tsa.pki["ca.pem"])],
        capture_output=True, text=True, timeout=30)
    assert peer.returncode == 0 and "Verification: OK" in peer.stdout, peer.stderr
    assert inspect_token(token, (), expected_imprint=imprint).anchored is False
    with pytest.raises(TokenMismatch):
        inspect_token(token, ec_tsa.anchors, expected_imprint=hashlib.sha256(b"y").digest())
    with pytest.raises(TokenMismatch, match="nonce"):
        read_response(reply, imprint, 100, ec_tsa.anchors)


def test_rsa_tsa(tmp_path: Path) -> None:
    tsa = OpenSslTsa(tmp_path, "rsa")
    imprint = hashlib.sha256(b"rsa").digest()
    assert inspect_token(tsa.token(imprint), tsa.anchors, expected_imprint=imprint).anchored


def test_untrusted_tsa(ec_tsa: OpenSslTsa, tmp_path: Path) -> None:
    other = parse_anchors_pem(make_pki(tmp_path / "other")["ca.pem"].read_bytes())
    imprint = hashlib.sha256(b"z").digest()
    with pytest.raises(TokenUntrusted):
        inspect_token(ec_tsa.token(imprint), other, expected_imprint=imprint)


def _resign_free_edit(token: bytes, edit: str) -> bytes:
    """The token with one part changed and nothing re-signed."""
    ci = cms.ContentInfo.load(token)
    sd = ci["content"]
    if edit == "signature":
        sig = bytearray(sd["signer_infos"][0]["signature"].native)
        sig[10] ^= 1
        sd["signer_infos"][0]["signature"] = bytes(sig)
    elif edit == "tstinfo":
        tst = tsp.TSTInfo.load(sd["encap_content_info"]["content"].contents)
        tst["serial_number"] = tst["serial_number"].native + 1
        sd["encap_content_info"]["content"] = tst
    else:
        sd["certificates"] = []
    return bytes(ci.dump(force=True))


@pytest.mark.parametrize(("edit", "message"), [
    ("signature", "signature is invalid"),
    ("tstinfo", "message digest does not match"),
    ("certificates", "neither in the token nor among the trust anchors"),
])
def test_altered_token_refused(ec_tsa: OpenSslTsa, edit: str, message: str) -> None:
    imprint = hashlib.sha256(b"alter").digest()
    bad = _resign_free_edit(ec_tsa.token(imprint), edit)
    with pytest.raises(TokenError, match=message):
        inspect_token(bad, (), expected_imprint=imprint)


@pytest.mark.parametrize("data", [b"", b"\x30\x03\x02\x01\x01", b"not der at all" * 10])
def test_garbage_is_a_token_error(data: bytes) -> None:
    with pytest.raises(TokenError):
        inspect_token(data)


# --- A camera's tokens against its checkpoints ----------------------------------------------

def _checkpoints(n: int) -> list[dict]:
    """n well-formed checkpoint entries, chained by prev_checkpoint (signatures are not
    what step 6 checks)."""
    out: list[dict] = []
    prev = GENESIS
    for i in range(n):
        cp = checkpoint_to_json(Checkpoint("cam1", 10 * i + 9, "ab" * 32, prev,
                                           1_700_000_000_000_000_000 + i * 10**9, "cd" * 32,
                                           "ef" * 64))
        prev = hashlib.sha256(_canon(cp)).hexdigest()
        out.append(cp)
    return out


def _canon(obj: dict) -> bytes:
    from vidproof.canonical import canonical_bytes

    return canonical_bytes(obj)


def _stamp(tsa: OpenSslTsa, cp: dict, line: int) -> Stamp:
    h = hashlib.sha256(_canon(cp)).hexdigest()
    return Stamp(line, cp["seq"], h, base64.b64encode(tsa.token(bytes.fromhex(h))).decode(),
                 time.time_ns())


def test_proven_existence_stretches(ec_tsa: OpenSslTsa) -> None:
    cps = _checkpoints(5)  # seqs 9, 19, 29, 39, 49
    frames = [(s, 1_700_000_000_000_000_000 + s * 10**8) for s in range(2, 50)]
    table = [(c["seq"], hashlib.sha256(_canon(c)).hexdigest(), c["utc_ns"]) for c in cps]
    late = _stamp(ec_tsa, cps[3], 1)  # over seq 39
    time.sleep(0.02)
    later = _stamp(ec_tsa, cps[1], 2)  # over seq 19, obtained after the other
    res = check_timestamps("cam1", [late, later], table, frames, ec_tsa.anchors)
    assert res.valid == 2 and res.anchored is True and not res.findings
    st = res.proven_existence
    # Frames up to seq 39 are bounded by the earliest token at or after them (the one
    # over seq 39, obtained first); frames after the last token have no proof.
    assert [(s["first_frame"], s["last_frame"], s["proof"]) for s in st] == [
        (2, 39, "rfc3161"), (40, 49, "recorder_clock_only")]
    assert st[0]["by_utc_ns"] is not None and st[1]["by_utc_ns"] is None

    # A token naming a checkpoint that is not there, or a checkpoint with another seq.
    ghost = Stamp(3, 19, "11" * 32, late.token, 0)
    wrong_seq = Stamp(4, 20, late.checkpoint, late.token, 0)
    res = check_timestamps("cam1", [ghost, wrong_seq, late], table, frames, None)
    assert [f[0] for f in res.findings] == ["timestamp_mismatch", "timestamp_mismatch",
                                            "timestamp_unanchored"]
    # A token over another checkpoint than the one it names.
    swapped = Stamp(5, 19, table[1][1], late.token, 0)
    res = check_timestamps("cam1", [swapped], table, frames, ec_tsa.anchors)
    assert [f[0] for f in res.findings] == ["timestamp_mismatch"]
    assert all(s["proof"] == "recorder_clock_only" for s in res.proven_existence)


def test_linked_checkpoints_after_a_clip(ec_tsa: OpenSslTsa) -> None:
    cps = _checkpoints(4)
    clip = [(c["seq"], hashlib.sha256(_canon(c)).hexdigest(), c["utc_ns"]) for c in cps[:2]]
    frames = [(s, 0) for s in range(10, 20)]  # the clip's frames, under checkpoint seq 19
    token = _stamp(ec_tsa, cps[3], 1)  # over a checkpoint two after the clip's end
    res = check_timestamps("cam1", [token], clip, frames, ec_tsa.anchors, linked=cps[2:])
    assert not res.findings and res.proven_existence[0]["proof"] == "rfc3161"
    broken = [dict(cps[2], utc_ns=cps[2]["utc_ns"] + 1), cps[3]]
    res = check_timestamps("cam1", [token], clip, frames, ec_tsa.anchors, linked=broken)
    assert "timestamp_mismatch" in [f[0] for f in res.findings]
    assert res.proven_existence[0]["proof"] == "recorder_clock_only"


# --- The timestamp entry --------------------------------------------------------------------

def _entry(token: str = "AAEC") -> dict:
    return {"v": FORMAT, "type": "timestamp", "camera": "cam1", "seq": 9,
            "checkpoint": "ab" * 32, "utc_ns": 5, "token": token}


def test_timestamp_entry_round_trip() -> None:
    e = entry_from_json(_entry())
    assert isinstance(e, TimestampEntry) and e.seq == 9 and e.token == "AAEC"
    assert record_to_json(e) == _entry()


@pytest.mark.parametrize("token", ["", "AAE", "AAEC\n", "A AEC", "AAF=", "!!!!", 5, None])
def test_timestamp_entry_refuses_other_spellings(token: object) -> None:
    with pytest.raises(RecordError):
        entry_from_json(_entry(token))  # type: ignore[arg-type]


def test_timestamp_entry_exact_members() -> None:
    with pytest.raises(RecordError):
        entry_from_json(dict(_entry(), extra=1))
    e = _entry()
    del e["checkpoint"]
    with pytest.raises(RecordError):
        entry_from_json(e)


# --- SNTP ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "host", "port"), [
    ("pool.example", "pool.example", 123), ("127.0.0.1:11123", "127.0.0.1", 11123),
    ("[::1]:5000", "::1", 5000), ("[::1]", "::1", 123),
])
def test_server_parse(text: str, host: str, port: int) -> None:
    assert Server.parse(text) == Server(host, port)


@pytest.mark.parametrize("text", ["", ":123", "host:0", "host:99999", "host:x", "[::1"])
def test_server_parse_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="ntp"):
        Server.parse(text)


@pytest.mark.parametrize("ns", [0, 1_700_000_000_123_456_789, 2_200_000_000 * 10**9])
def test_ntp_timestamp_round_trip(ns: int) -> None:
    # 2^-32 s resolution, and the 16 low bits of the fraction are random (< 16 us).
    assert abs(_from_ntp(_to_ntp(ns)) - ns) < 16_000


def test_query_without_a_server() -> None:
    with pytest.raises(NtpError):
        query(Server("127.0.0.1", 9), timeout_s=0.5)


def test_no_jump_on_a_steady_clock() -> None:
    watch = ClockWatch(ClockSettings())
    assert all(watch.poll() == [] for _ in range(2000))
