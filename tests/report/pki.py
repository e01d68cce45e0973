"""A throwaway CA, a (possibly short-lived) report signer and a TSA, for long-term signature
tests; written to a folder as PEM files."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from auditor.report.revocation import issue_crl
from auditor.report.tsa import issue_tsa

PEM = serialization.Encoding.PEM


@dataclass(frozen=True)
class Pki:
    folder: Path
    root: Path
    root_key_pem: bytes
    cert: Path
    key: Path
    crl: Path
    tsa: object  # TsaIdentity
    not_after: datetime


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(folder: Path, *, signer_lifetime: timedelta = timedelta(days=30)) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc) - timedelta(minutes=5)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (x509.CertificateBuilder().subject_name(_name("test report CA"))
          .issuer_name(_name("test report CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now)
          .not_valid_after(now + timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    not_after = now + timedelta(minutes=5) + signer_lifetime
    cert = (x509.CertificateBuilder().subject_name(_name("test report signer"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(not_after)
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), False)
            .sign(ca_key, hashes.SHA256()))
    ca_key_pem = ca_key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
    files = Pki(folder, folder / "root.pem", ca_key_pem, folder / "signer.pem",
                folder / "signer.key.pem", folder / "root.crl",
                issue_tsa(ca.public_bytes(PEM), ca_key_pem), not_after)
    files.root.write_bytes(ca.public_bytes(PEM))
    files.cert.write_bytes(cert.public_bytes(PEM))
    files.key.write_bytes(key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    files.crl.write_bytes(issue_crl(ca.public_bytes(PEM), ca_key_pem))
    return files
