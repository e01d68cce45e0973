"""Certificate revocation lists from the report CA, for PAdES B-LT (revocation data in the DSS).

``auditor keys init``'s CA signs a CRL listing the revoked serial numbers (none at first); the
signer embeds it with the signature so that a verifier years later can see the certificate was
not revoked when the report was signed, without asking anyone. ``keys init`` writes the first
one (``root.crl``, beside ``root.pem`` and the CA key ``root.key.pem``); ``renew_crl`` (``auditor
keys crl``) issues the next one, with a higher number and any serials to revoke added, before
the current one runs out. A report signed at B-LT finds ``root.crl`` beside its signing key.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from auditor.errors import SigningError

CRL_FILE = "root.crl"
CA_KEY_FILE = "root.key.pem"
CRL_DAYS = 30  # a CRL's validity: renew it (auditor keys crl) at least this often


def issue_crl(ca_cert_pem: bytes, ca_key_pem: bytes, *, revoked: tuple[int, ...] = (),
              days: int = 30, number: int = 1, passphrase: bytes | None = None) -> bytes:
    """A DER CRL signed by the CA: ``revoked`` serial numbers, valid for ``days``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    try:
        ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
        ca_key = serialization.load_pem_private_key(ca_key_pem, password=passphrase)
    except (ValueError, TypeError) as exc:
        raise SigningError(f"cannot load the CA certificate and key ({type(exc).__name__}: a "
                           "wrong or missing passphrase?)") from None
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
    from cryptography.hazmat.primitives import serialization

    return [load_crl(path).public_bytes(serialization.Encoding.DER) for path in paths]


def write_crl(path: Path, der: bytes) -> None:
    """Replace ``path`` with the CRL atomically (a verifier never reads half a list)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(der)
    tmp.replace(path)


def load_crl(path: Path):
    """The CRL at ``path`` (DER or PEM) as a cryptography object; SigningError when unreadable."""
    from cryptography import x509

    try:
        data = Path(path).read_bytes()
        return (x509.load_pem_x509_crl(data) if data.lstrip().startswith(b"-----")
                else x509.load_der_x509_crl(data))
    except (OSError, ValueError) as exc:
        raise SigningError(f"cannot read the CRL {path}: {type(exc).__name__}") from None


def require_current(path: Path, now: datetime | None = None) -> None:
    """SigningError unless the CRL at ``path`` is valid now (a stale list cannot vouch for
    the signer: pyHanko would refuse the path anyway, with a less helpful message)."""
    crl = load_crl(path)
    now = now or datetime.now(timezone.utc)
    expires = crl.next_update_utc
    if expires is not None and now > expires:
        raise SigningError(f"the CRL {path} expired on {expires:%Y-%m-%d %H:%M} UTC; renew it "
                           f"with: auditor keys crl {Path(path).parent}")


def renew_crl(folder: str | Path, *, passphrase: bytes | None = None,
              revoke: tuple[int, ...] = (), days: int = CRL_DAYS) -> tuple[Path, int, int]:
    """Issue the CA's next CRL into ``folder/root.crl``: the serials the current one revokes
    plus ``revoke``, numbered one higher. Returns (path, CRL number, serials revoked)."""
    folder = Path(folder)
    root, key, path = folder / "root.pem", folder / CA_KEY_FILE, folder / CRL_FILE
    for needed in (root, key):
        if not needed.is_file():
            raise SigningError(f"{needed} does not exist: keys made by auditor keys init keep "
                               "the CA there (older key folders: run keys init again)")
    revoked, number = set(revoke), 1
    if path.exists():
        from cryptography import x509

        current = load_crl(path)
        revoked |= {entry.serial_number for entry in current}
        try:
            number = current.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
        except x509.ExtensionNotFound:
            pass
    der = issue_crl(root.read_bytes(), key.read_bytes(), revoked=tuple(sorted(revoked)),
                    days=days, number=number, passphrase=passphrase)
    write_crl(path, der)
    return path, number, len(revoked)
