"""Certificate revocation lists from the report CA, for PAdES B-LT (revocation data in the DSS).

``auditor keys init``'s CA signs a CRL listing the revoked serial numbers (none at first); the
signer embeds it with the signature so that a verifier years later can see the certificate was
not revoked when the report was signed, without asking anyone.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from auditor.errors import SigningError

CRL_FILE = "root.crl"


def issue_crl(ca_cert_pem: bytes, ca_key_pem: bytes, *, revoked: tuple[int, ...] = (),
              days: int = 30, number: int = 1, passphrase: bytes | None = None) -> bytes:
    """A DER CRL signed by the CA: ``revoked`` serial numbers, valid for ``days``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    try:
        ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
        ca_key = serialization.load_pem_private_key(ca_key_pem, password=passphrase)
    except (ValueError, TypeError) as exc:
        raise SigningError(f"cannot load the CA certificate and key: {type(exc).__name__}") \
            from None
    now = datetime.now(timezone.utc) - timedelta(minutes=5)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
               .last_update(now).next_update(now + timedelta(days=days))
               .add_extension(x509.CRLNumber(number), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_cert.public_key()), critical=False))
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def read_crls(paths: tuple[Path, ...]) -> list[bytes]:
    """DER bytes of each CRL file (DER or PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    out = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
            crl = (x509.load_pem_x509_crl(data) if data.lstrip().startswith(b"-----")
                   else x509.load_der_x509_crl(data))
        except (OSError, ValueError) as exc:
            raise SigningError(f"cannot read the CRL {path}: {type(exc).__name__}") from None
        out.append(crl.public_bytes(serialization.Encoding.DER))
    return out
