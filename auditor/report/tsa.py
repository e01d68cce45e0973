"""A local RFC 3161 timestamp authority: a TSA certificate issued by a CA, and a tiny HTTP server
on 127.0.0.1 answering ``application/timestamp-query`` with pyHanko's ``DummyTimeStamper``.

For tests and offline demos: it signs whatever it is asked to, at its own clock (or a fixed
time). Production reports use a real TSA (``--tsa-url``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_QUERY = 64 * 1024


@dataclass(frozen=True)
class TsaIdentity:
    cert_pem: bytes
    key_pem: bytes

    def stamper(self, fixed_dt: datetime | None = None):
        from pyhanko.keys import load_certs_from_pemder_data, load_private_key_from_pemder_data
        from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

        return DummyTimeStamper(tsa_cert=next(iter(load_certs_from_pemder_data(self.cert_pem))),
                                tsa_key=load_private_key_from_pemder_data(self.key_pem, None),
                                fixed_dt=fixed_dt)


def issue_tsa(ca_cert_pem: bytes, ca_key_pem: bytes, *, days: int = 3650,
              name: str = "auditor local TSA", passphrase: bytes | None = None) -> TsaIdentity:
    """A TSA certificate (RSA: the dummy stamper is RSA-only; extended key usage timeStamping,
    critical, as RFC 3161 requires) signed by the given CA (its key encrypted with
    ``passphrase`` when given, as ``keys init`` writes root.key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=passphrase)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(timezone.utc) - timedelta(minutes=5)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), True)
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False,
                                         False), critical=True)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return TsaIdentity(cert.public_bytes(pem), key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


class LocalTsa:
    """``with LocalTsa(identity) as tsa: sign(..., tsa_url=tsa.url)``: an RFC 3161 server on a
    free port of 127.0.0.1, stopped on exit."""

    def __init__(self, identity: TsaIdentity, fixed_dt: datetime | None = None):
        self.stamper = identity.stamper(fixed_dt)
        self.requests = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/tsa"

    def _handler(self):
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                from asn1crypto import tsp

                length = int(self.headers.get("Content-Length") or 0)
                if self.headers.get("Content-Type") != "application/timestamp-query" or \
                        not 0 < length <= MAX_QUERY:
                    self.send_error(400, "expected an application/timestamp-query")
                    return
                try:
                    query = tsp.TimeStampReq.load(self.rfile.read(length))
                    reply = tsa.stamper.request_tsa_response(query).dump()
                except Exception:  # a malformed query gets a 400, never a traceback
                    self.send_error(400, "malformed timestamp query")
                    return
                tsa.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):  # quiet
                pass

        return Handler

    def __enter__(self) -> LocalTsa:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def write_tsa(identity: TsaIdentity, folder: str | Path) -> Path:
    """Write ``tsa.pem`` (the certificate) beside a key folder; the key stays in memory."""
    path = Path(folder) / "tsa.pem"
    path.write_bytes(identity.cert_pem)
    return path
