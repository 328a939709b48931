#!/usr/bin/env python3
"""A real RFC 3161 time-stamp authority for tests: ``openssl ts -reply`` behind HTTP.

    python tests/servers/tsa_server.py --make-pki PKI     # a test CA and TSA certificate
    python tests/servers/tsa_server.py --cert PKI/tsa.pem --key PKI/tsa.key --chain PKI/ca.pem \\
        --workdir DIR --port 0

It listens on ``http://127.0.0.1:PORT/`` and answers each ``POST`` of an
``application/timestamp-query`` (a DER TimeStampReq, RFC 3161 section 3.4) with an
``application/timestamp-reply`` made by OpenSSL's own TSA (``openssl ts -reply``):
SHA-256 signer digest, ESSCertIDv2, the TSA name and the signing certificate in the
token when the request asks for it, a serial number kept in ``DIR/serial``.
``--chain FILE`` adds certificates (e.g. the issuing CA) to the token.

When it listens it prints one line ``ready http://127.0.0.1:PORT/`` on stdout and
flushes it; ``--port 0`` picks a free port. SIGTERM or SIGINT stop it with exit 0.
Only the standard library and the ``openssl`` command: no project code, so that it
behaves like an independent TSA.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

MAX_QUERY = 64 * 1024
POLICY = "1.3.6.1.4.1.59999.3161.1"  # a test policy OID


def make_pki(out: Path, key_type: str = "ec") -> dict[str, Path]:
    """A test root CA and a TSA certificate issued by it (critical EKU timeStamping),
    made with the openssl command: ``ca.pem``, ``ca.key``, ``tsa.pem``, ``tsa.key``."""
    out.mkdir(parents=True, exist_ok=True)
    newkey = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key_type == "ec"
              else ["-newkey", "rsa:2048"])
    p = {n: out / n for n in ("ca.pem", "ca.key", "tsa.pem", "tsa.key", "tsa.csr", "ext.cnf")}

    def run(*cmd: str) -> None:
        subprocess.run(["openssl", *cmd], check=True, capture_output=True, timeout=60)

    run("req", "-x509", *newkey, "-nodes", "-keyout", str(p["ca.key"]), "-out", str(p["ca.pem"]),
        "-days", "3650", "-subj", "/O=vidproof tests/CN=Test TSA Root CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-new", *newkey, "-nodes", "-keyout", str(p["tsa.key"]), "-out", str(p["tsa.csr"]),
        "-subj", "/O=vidproof tests/CN=Test Time-Stamp Authority")
    p["ext.cnf"].write_text("basicConstraints=critical,CA:FALSE\n"
                            "keyUsage=critical,digitalSignature\n"
                            "extendedKeyUsage=critical,timeStamping\n"
                            "subjectKeyIdentifier=hash\n"
                            "authorityKeyIdentifier=keyid\n")
    run("x509", "-req", "-in", str(p["tsa.csr"]), "-CA", str(p["ca.pem"]), "-CAkey",
        str(p["ca.key"]), "-set_serial", "2", "-days", "3650", "-out", str(p["tsa.pem"]),
        "-extfile", str(p["ext.cnf"]))
    return p


def write_config(workdir: Path, cert: Path, key: Path, chain: Path | None) -> Path:
    serial = workdir / "serial"
    if not serial.exists():
        serial.write_text("01\n")
    lines = [
        "[ tsa ]",
        "default_tsa = tsa_config",
        "[ tsa_config ]",
        f"serial = {serial}",
        "crypto_device = builtin",
        f"signer_cert = {cert}",
        f"signer_key = {key}",
        "signer_digest = sha256",
        f"default_policy = {POLICY}",
        "digests = sha256, sha384, sha512",
        "accuracy = secs:1",
        "clock_precision_digits = 3",
        "ordering = no",
        "tsa_name = yes",
        "ess_cert_id_chain = no",
        "ess_cert_id_alg = sha256",
    ]
    if chain is not None:
        lines.insert(8, f"certs = {chain}")
    conf = workdir / "tsa.cnf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


class Handler(BaseHTTPRequestHandler):
    config: Path
    workdir: Path
    lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        sys.stderr.write("tsa: " + (format % args) + "\n")

    def _reply(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Content-Type") != "application/timestamp-query":
            self._reply(415, b"expected application/timestamp-query\n")
            return
        if not 0 < length <= MAX_QUERY:
            self._reply(400, b"bad length\n")
            return
        query = self.rfile.read(length)
        with self.lock, tempfile.TemporaryDirectory(dir=self.workdir) as tmp:
            q, r = Path(tmp) / "query.tsq", Path(tmp) / "reply.tsr"
            q.write_bytes(query)
            proc = subprocess.run(
                ["openssl", "ts", "-reply", "-config", str(self.config), "-queryfile", str(q),
                 "-out", str(r)], capture_output=True, timeout=30)
            if proc.returncode != 0 or not r.is_file():
                sys.stderr.write(proc.stderr.decode(errors="replace"))
                self._reply(500, b"openssl ts -reply failed\n")
                return
            self._reply(200, r.read_bytes(), "application/timestamp-reply")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cert", type=Path, help="TSA certificate (PEM)")
    p.add_argument("--key", type=Path, help="TSA private key (PEM)")
    p.add_argument("--make-pki", type=Path, metavar="DIR",
                   help="only write a test CA and TSA certificate into DIR, then exit")
    p.add_argument("--key-type", choices=("ec", "rsa"), default="ec")
    p.add_argument("--chain", type=Path, help="more certificates to put in tokens (PEM)")
    p.add_argument("--workdir", type=Path, help="config and serial number (required to serve)")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    if args.make_pki:
        make_pki(args.make_pki, args.key_type)
        return 0
    if args.cert is None or args.key is None or args.workdir is None:
        p.error("--cert, --key and --workdir are required to serve")
    args.workdir.mkdir(parents=True, exist_ok=True)
    Handler.config = write_config(args.workdir, args.cert.resolve(), args.key.resolve(),
                                  args.chain.resolve() if args.chain else None)
    Handler.workdir = args.workdir
    server = HTTPServer(("127.0.0.1", args.port), Handler)

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"ready http://127.0.0.1:{server.server_address[1]}/", flush=True)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
