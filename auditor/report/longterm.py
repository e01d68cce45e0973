"""Long-term validation of a report's signature (PAdES B-T, B-LT, B-LTA).

The signature is checked at the time its RFC 3161 timestamp proves (a report signed with a
certificate that has since expired is still valid if the timestamp, itself trusted, shows it
was signed while the certificate was current); certificates and CRLs from the document's DSS
are used, nothing is fetched. Revisions appended after the signature are accepted only when
they add validation data (DSS) or document timestamps (B-LTA); any other change is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class SignatureFacts:
    intact: bool
    valid: bool
    trusted: bool
    signed_at: datetime | None  # the timestamp's time, None without a timestamp
    timestamp_trusted: bool
    checked_at: datetime  # the moment the signer's certificate path was validated at
    revocation_data: bool  # the DSS held CRLs/OCSP responses that were used
    later_revisions: int  # revisions appended after the signature
    later_revisions_ok: bool  # only DSS / document timestamps were added
    detail: str
    status: object = None  # pyHanko's PdfSignatureStatus at checked_at


def _context(roots, dss, moment: datetime, revocation: bool):
    from pyhanko_certvalidator import ValidationContext

    kwargs = dict(trust_roots=list(roots), allow_fetching=False, moment=moment,
                  revocation_mode="hard-fail" if revocation else "soft-fail")
    if dss is not None:
        return dss.as_validation_context(kwargs)
    return ValidationContext(**kwargs)


def _dss(reader):
    from pyhanko.sign.validation.dss import DocumentSecurityStore

    try:
        return DocumentSecurityStore.read_dss(reader)
    except Exception:  # no DSS
        return None


def _later_revisions(reader, embedded, status) -> tuple[int, bool, str]:
    """How many revisions follow the signature's, and whether each only adds validation data
    or a document timestamp (pyHanko's difference analysis: modification level LTA_UPDATES)."""
    from pyhanko.sign.diff_analysis import ModificationLevel
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    later = reader.xrefs.total_revisions - 1 - embedded.signed_revision
    if later == 0:
        return 0, status.coverage == SignatureCoverageLevel.ENTIRE_FILE, "covers the whole file"
    others = [s for s in reader.embedded_signatures if s is not embedded]
    stamps_only = all(s.sig_object.get("/Type") == "/DocTimeStamp" for s in others)
    level = status.modification_level
    ok = (status.coverage >= SignatureCoverageLevel.ENTIRE_REVISION and stamps_only
          and level is not None and level <= ModificationLevel.LTA_UPDATES)
    what = "only validation data or document timestamps" if ok else \
        f"changes beyond validation data ({level.name if level else 'unknown'})"
    return later, ok, f"{later} later revision(s): {what}"


def signatures(reader) -> list:
    """The document's signatures, document timestamps (B-LTA) left out."""
    return [s for s in reader.embedded_signatures
            if s.sig_object.get("/Type") != "/DocTimeStamp"]


def validate(reader, roots, *, now: datetime | None = None) -> SignatureFacts:
    """Validate the report's one signature (the first that is not a document timestamp) against
    ``roots`` (asn1crypto certificates) as of ``now`` (default: the current time)."""
    from pyhanko.sign.validation import validate_pdf_signature

    from auditor.logs import quiet_by_default

    quiet_by_default()  # pyHanko logs a traceback for every certificate it cannot validate
    now = now or datetime.now(timezone.utc)
    embedded = signatures(reader)[0]
    dss = _dss(reader)
    revocation = dss is not None and bool(dss.crls or dss.ocsps)
    # first at "now": establishes the timestamp (whose TSA certificate must be current now)
    status = validate_pdf_signature(embedded, _context(roots, dss, now, revocation),
                                    ts_validation_context=_context(roots, dss, now, False))
    ts = status.timestamp_validity
    signed_at, ts_trusted = None, False
    if ts is not None and ts.intact and ts.valid and ts.trusted:
        signed_at, ts_trusted = ts.timestamp, True
        # then the signer's path at the proven signing time
        status = validate_pdf_signature(
            embedded, _context(roots, dss, signed_at, revocation),
            ts_validation_context=_context(roots, dss, now, False))
    later, later_ok, detail = _later_revisions(reader, embedded, status)
    checked_at = signed_at or now
    return SignatureFacts(intact=status.intact, valid=status.valid, trusted=status.trusted,
                          signed_at=signed_at, timestamp_trusted=ts_trusted,
                          checked_at=checked_at, revocation_data=revocation,
                          later_revisions=later, later_revisions_ok=later_ok, detail=detail,
                          status=status)


def describe(facts: SignatureFacts) -> str:
    """One line for the verification output: when, and on what evidence, the signer's
    certificate was checked."""
    if facts.signed_at is None:
        return f"no trusted timestamp: certificate checked at {facts.checked_at:%Y-%m-%d %H:%M} UTC"
    extra = ", revocation data from the DSS" if facts.revocation_data else ""
    return f"RFC 3161 timestamp {facts.signed_at:%Y-%m-%d %H:%M:%S} UTC (trusted){extra}"
