"""``auditor keys init``: a self-signed CA and a signing identity for a team's first use.

Writes ``root.pem`` (the CA certificate: give it to verifiers as ``--trust``), ``root.key.pem``
(the CA's private key, kept to issue CRLs: owner-only and encrypted with the same passphrase),
``root.crl`` (the CA's first certificate revocation list, revoking nothing, valid for
``CRL_DAYS``; ``auditor keys crl`` renews it), ``signer.pem`` (certificate), ``signer.key.pem``
(private key, encrypted when a passphrase is given) and ``signer.p12``. An empty passphrase is refused (``passphrase=None`` is the explicit choice of
an unencrypted key, ``--no-passphrase`` on the command line). A ``demo`` identity carries "auditor demo identity" in its subject, and reports
signed with it say DEMO on the cover.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from auditor.errors import SigningError
from auditor.report.revocation import CA_KEY_FILE, CRL_DAYS, CRL_FILE, issue_crl, write_crl
from auditor.report.sign import DEMO_MARK


@dataclass(frozen=True)
class KeyFiles:
    folder: Path
    root: Path
    ca_key: Path
    crl: Path
    cert: Path
    key: Path
    p12: Path
    demo: bool


def _name(common: str, org: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])


def _certificate(subject, issuer, public_key, issuer_key, *, ca: bool, days: int):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    now = datetime.now(timezone.utc) - timedelta(minutes=5)
    usage = dict(digital_signature=not ca, content_commitment=not ca, key_encipherment=False,
                 data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                 encipher_only=False, decipher_only=False)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), True)
               .add_extension(x509.KeyUsage(**usage), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False))
    return builder.sign(issuer_key, hashes.SHA256())


def _encryption(passphrase: bytes | None):
    from cryptography.hazmat.primitives import serialization

    if passphrase:
        return serialization.BestAvailableEncryption(passphrase)
    return serialization.NoEncryption()


def _write_private(path: Path, data: bytes) -> None:
    """Write an owner-only file; one being replaced (--force) is made owner-only first, as
    ``os.open``'s mode applies only to a file it creates."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def init_keys(folder: str | Path, *, demo: bool = False, name: str = "auditor signer",
              organisation: str = "auditor", passphrase: bytes | None = None,
              days: int = 825, overwrite: bool = False) -> KeyFiles:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12

    if passphrase is not None and not passphrase.strip():
        raise SigningError("the passphrase is empty: refusing to write a private key protected "
                           "by nothing (set a passphrase, or pass --no-passphrase to write an "
                           "unencrypted key knowingly)")
    folder = Path(folder)
    files = KeyFiles(folder, folder / "root.pem", folder / CA_KEY_FILE, folder / CRL_FILE,
                     folder / "signer.pem", folder / "signer.key.pem", folder / "signer.p12", demo)
    if not overwrite and any(p.exists() for p in (files.root, files.ca_key, files.cert,
                                                  files.key, files.p12)):
        raise SigningError(f"{folder} already holds keys; pass --force to replace them")
    folder.mkdir(parents=True, exist_ok=True)
    org = f"{organisation} ({DEMO_MARK})" if demo else organisation
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    ca_name = _name(f"{organisation} report CA", org)
    ca = _certificate(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True, days=days + 365)
    cert = _certificate(_name(name, org), ca_name, key.public_key(), ca_key, ca=False, days=days)
    pem = serialization.Encoding.PEM
    files.root.write_bytes(ca.public_bytes(pem))
    ca_key_pem = ca_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
    _write_private(files.ca_key, ca_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                      _encryption(passphrase)))
    write_crl(files.crl, issue_crl(files.root.read_bytes(), ca_key_pem, days=CRL_DAYS))
    files.cert.write_bytes(cert.public_bytes(pem))
    _write_private(files.key, key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                _encryption(passphrase)))
    _write_private(files.p12, pkcs12.serialize_key_and_certificates(
        name.encode(), key, cert, [ca], _encryption(passphrase)))
    return files
