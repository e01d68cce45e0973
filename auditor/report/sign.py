"""PAdES signing with pyHanko: a key from PKCS#12 or PEM key + certificate (+ chain).

Passphrases come from an environment variable or a file; they are never logged, printed or
written anywhere.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from auditor.errors import SigningError

FIELD_NAME = "AuditorSignature"
LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")  # PAdES baseline levels ``--level`` may ask for
DEMO_MARK = "auditor demo identity"


@dataclass(frozen=True)
class LongTerm:
    """PAdES B-LT: certificates and CRLs (DER) written into the DSS; B-LTA adds a document
    timestamp over them (needs a timestamp authority)."""

    roots: tuple[bytes, ...]
    crls: tuple[bytes, ...]
    archive: bool = False


@dataclass(frozen=True)
class SignerSettings:
    """Where the signing identity is. Give ``p12`` or ``key`` + ``cert``."""

    p12: Path | None = None
    key: Path | None = None
    cert: Path | None = None
    chain: tuple[Path, ...] = field(default_factory=tuple)
    passphrase_env: str | None = None
    passphrase_file: Path | None = None
    tsa_url: str | None = None
    crls: tuple[Path, ...] = field(default_factory=tuple)  # B-LT: revocation data for the DSS
    trust: tuple[Path, ...] = field(default_factory=tuple)  # roots the embedded paths end at
    archive: bool = False  # B-LTA: a document timestamp over the validation data
    level: str | None = None  # a PAdES level asked for by name (LEVELS); see ``at_level``

    def keys_folder(self) -> Path:
        """The folder of the signing key (``keys init`` keeps root.pem and root.crl there)."""
        return Path(self.p12 or self.key or ".").parent

    def at_level(self) -> SignerSettings:
        """These settings made to reach ``level`` exactly: B-B drops any timestamp and
        validation data, B-T drops the validation data, B-LT and B-LTA need a timestamp
        authority and take the CA's CRL and certificate from the key folder (``root.crl``,
        ``root.pem``, as ``auditor keys init`` writes them) unless given; B-LTA adds the
        archive timestamp. No ``level``: the settings as given."""
        from dataclasses import replace

        from auditor.report.revocation import CRL_FILE

        if self.level is None:
            return self
        if self.level not in LEVELS:
            raise SigningError(f"unknown PAdES level {self.level!r}: use one of "
                               f"{', '.join(LEVELS)}")
        if self.level == "B-B":
            return replace(self, tsa_url=None, crls=(), archive=False)
        if not self.tsa_url:
            raise SigningError(f"PAdES {self.level} needs a timestamp authority: give --tsa-url "
                               "URL (or signing: tsa_url in the settings file)")
        if self.level == "B-T":
            return replace(self, crls=(), archive=False)
        folder = self.keys_folder()
        crls = self.crls or (folder / CRL_FILE,)
        for crl in crls:
            if not Path(crl).is_file():
                raise SigningError(f"PAdES {self.level} needs the CA's CRL: {crl} does not exist "
                                   "(auditor keys init writes one; auditor keys crl renews it; "
                                   "or give --crl FILE)")
        trust = self.trust or (() if self.chain else tuple(
            p for p in (folder / "root.pem",) if p.is_file()))
        return replace(self, crls=tuple(crls), trust=trust, archive=self.level == "B-LTA")

    def long_term(self) -> LongTerm | None:
        """The B-LT settings, or None for B-B / B-T."""
        if not self.crls:
            return None
        from auditor.report.revocation import read_crls, require_current

        roots = [Path(p).read_bytes() for p in (self.trust or self.chain)]
        if not roots:
            raise SigningError("B-LT needs the CA certificate: give --chain or --trust")
        for crl in self.crls:
            require_current(Path(crl))
        return LongTerm(roots=tuple(roots), crls=tuple(read_crls(self.crls)),
                        archive=self.archive)

    def passphrase(self) -> bytes | None:
        if self.passphrase_env:
            value = os.environ.get(self.passphrase_env)
            if value is None:
                raise SigningError(f"environment variable {self.passphrase_env} is not set")
            return value.encode()
        if self.passphrase_file:
            try:
                return Path(self.passphrase_file).read_bytes().rstrip(b"\r\n")
            except OSError as exc:
                raise SigningError(f"cannot read the passphrase file {self.passphrase_file}: "
                                   f"{exc.strerror}") from None
        return None


def _check_files(settings: SignerSettings) -> None:
    paths = [settings.p12] if settings.p12 else [settings.key, settings.cert]
    if None in paths:
        raise SigningError("give --p12 FILE, or --key FILE and --cert FILE")
    for path in [*paths, *settings.chain]:
        if not Path(path).is_file():
            raise SigningError(f"signing file {path} does not exist")


def load_signer(settings: SignerSettings):
    """A pyHanko SimpleSigner; a wrong passphrase or unusable file is a SigningError."""
    from pyhanko.sign import signers

    _check_files(settings)
    chain = [str(p) for p in settings.chain]
    try:
        if settings.p12:
            signer = signers.SimpleSigner.load_pkcs12(str(settings.p12), ca_chain_files=chain,
                                                      passphrase=settings.passphrase())
        else:
            signer = signers.SimpleSigner.load(str(settings.key), str(settings.cert),
                                               ca_chain_files=chain,
                                               key_passphrase=settings.passphrase())
    except SigningError:
        raise
    except Exception:  # pyHanko/cryptography errors may quote file content: keep them out
        signer = None
    if signer is None or signer.signing_cert is None:
        raise SigningError("cannot load the signing key and certificate (wrong passphrase, "
                           "or not a key/certificate file)")
    _require_current(signer.signing_cert)
    return signer


def _require_current(cert) -> None:
    """Refuse to sign with a certificate outside its validity period (asn1crypto cert)."""
    from datetime import datetime, timezone

    validity = cert["tbs_certificate"]["validity"]
    start, end = validity["not_before"].native, validity["not_after"].native
    now = datetime.now(timezone.utc)
    who = cert.subject.human_friendly
    if now > end:
        raise SigningError(f"the signing certificate of {who} expired on {end:%Y-%m-%d}; "
                           "renew it (auditor keys init) before signing")
    if now < start:
        raise SigningError(f"the signing certificate of {who} is not valid before "
                           f"{start:%Y-%m-%d}")


def _require_not_revoked(cert, crls: tuple[bytes, ...]) -> None:
    """Refuse to sign with a certificate that a CRL of its issuer lists as revoked (asn1crypto
    cert, DER CRLs): validation data must not vouch for a revoked signer."""
    from cryptography import x509

    issuer = cert.issuer.dump()
    for der in crls:
        crl = x509.load_der_x509_crl(der)
        if crl.issuer.public_bytes() == issuer and \
                crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            raise SigningError(f"the signing certificate of {cert.subject.human_friendly} "
                               f"(serial {cert.serial_number}) is revoked by its CA's CRL")


def signer_name(signer) -> str:
    return signer.signing_cert.subject.human_friendly


def is_demo(signer) -> bool:
    return DEMO_MARK in signer_name(signer).lower()


def _timestamper(url: str | None):
    if not url:
        return None
    from pyhanko.sign.timestamps import HTTPTimeStamper

    return HTTPTimeStamper(url)


REASON = "auditor accountability report"


def _validation_context(long_term: LongTerm):
    from pyhanko.keys import load_certs_from_pemder_data
    from pyhanko_certvalidator import ValidationContext

    roots = [c for pem in long_term.roots for c in load_certs_from_pemder_data(pem)]
    return ValidationContext(trust_roots=roots, crls=list(long_term.crls), allow_fetching=False,
                             revocation_mode="hard-fail")


def level(*, timestamped: bool, long_term: LongTerm | None) -> str:
    """The PAdES baseline level a signature made with these settings reaches."""
    if long_term is None:
        return "B-T" if timestamped else "B-B"
    if not timestamped:
        return "B-B with validation data"
    return "B-LTA" if long_term.archive else "B-LT"


def sign_pdf(pdf: bytes, signer, *, tsa_url: str | None = None, timestamper=None,
             long_term: LongTerm | None = None) -> bytes:
    """The PDF with one invisible PAdES signature over the whole file (B-B; B-T with a
    timestamp authority). With ``long_term``, pyHanko validates the signer's (and the TSA's)
    certificate path against the given roots and CRLs and appends them in a DSS revision
    (B-LT), plus a document timestamp when ``long_term.archive`` (B-LTA)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.sign.fields import SigSeedSubFilter

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    stamper = timestamper or _timestamper(tsa_url)
    extra = {}
    if long_term is not None:
        if long_term.archive and stamper is None:
            raise SigningError("B-LTA needs a timestamp authority (--tsa-url)")
        _require_not_revoked(signer.signing_cert, long_term.crls)
        extra = dict(embed_validation_info=True, validation_context=_validation_context(
            long_term), use_pades_lta=long_term.archive)
    meta = signers.PdfSignatureMetadata(field_name=FIELD_NAME, md_algorithm="sha256",
                                        subfilter=SigSeedSubFilter.PADES, reason=REASON,
                                        **extra)
    try:
        out = signers.sign_pdf(writer, meta, signer=signer, timestamper=stamper,
                               new_field_spec=fields.SigFieldSpec(FIELD_NAME))
    except Exception as exc:
        raise SigningError(f"signing failed: {type(exc).__name__}: {exc}") from exc
    return out.getvalue()
