"""Verify a signed report: the signature (intact, valid, trusted, covering the whole file), the
embedded files against the hashes printed on the cover, that its own evidence says the store
verified when it was made, and optionally the evidence against the store's event log and rows.

Without ``trust`` the signer is unknown: a certificate anyone can make may copy our names, so the
report is INVALID ("signature intact, signer NOT verified") unless the caller asks for an
integrity-only check. Attachments are found by their role (the fixed names auditor gives them,
``ROLES``), never by a name a user chose. Outcomes are data (``VerificationResult``); only an
unreadable input or store raises.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from auditor.errors import AuditorError, ReportError
from auditor.hashing import sha256_bytes
from auditor.logs import quiet_by_default
from auditor.report.render import ATTACHMENTS_META, EVIDENCE_NAME, REPORT_ID_META
from auditor.report.sign import DEMO_MARK

MAX_PDF_BYTES = 256 * 1024 * 1024  # a report is a few hundred kB
NOT_VERIFIED = "signature intact, signer NOT verified"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class VerificationResult:
    path: Path
    checks: list[Check] = field(default_factory=list)
    signer: str | None = None
    report_id: str | None = None
    demo: bool = False
    trust_checked: bool = False
    integrity_only: bool = False
    signed_at: datetime | None = None  # the trusted RFC 3161 timestamp's time, if any

    @property
    def valid(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        return bool(ok)


def _reader(data: bytes):
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    return PdfFileReader(io.BytesIO(data), strict=False)


def _roots(trust: Path | None) -> list:
    from pyhanko.keys import load_cert_from_pemder

    if trust is None:
        return []
    try:
        return [load_cert_from_pemder(str(trust))]
    except Exception as exc:
        raise ReportError(f"cannot read the trust root {trust}: {exc}") from None


def _check_signature(result: VerificationResult, reader, trust: Path | None, data: bytes,
                     at: datetime | None = None) -> None:
    """The report's one signature, validated at the time its RFC 3161 timestamp proves (else
    at ``at``, default now), with the DSS's certificates and CRLs; later revisions may only add
    validation data or document timestamps (docs/reports.md, long-term signatures)."""
    from auditor.report import longterm

    signatures = longterm.signatures(reader)
    if not result.add("signed", len(signatures) == 1,
                      f"{len(signatures)} signature(s); a report carries exactly one "
                      "(document timestamps aside)"):
        return
    roots = _roots(trust)
    try:
        facts = longterm.validate(reader, roots, now=at)
    except ReportError:
        raise
    except Exception as exc:
        result.add("signature intact", False, f"signature cannot be validated: {exc}")
        return
    status = facts.status
    result.signer = status.signing_cert.subject.human_friendly
    result.demo = DEMO_MARK in result.signer.lower()
    result.signed_at = facts.signed_at
    result.add("signature intact", facts.intact, "the signed bytes hash to the signed digest")
    result.add("signature valid", facts.valid, "the signature verifies with the certificate")
    if trust is not None:
        result.trust_checked = True
        result.add("signer trusted", facts.trusted,
                   f"chain to {trust.name}; {longterm.describe(facts)}")
    elif not result.integrity_only:
        result.add("signer verified", False, f"{NOT_VERIFIED}: no --trust ROOT.pem given (or "
                   "pass --integrity-only to check integrity alone)")
    if facts.later_revisions:
        junk = not data.rstrip().endswith(b"%%EOF")
        result.add("covers whole file", facts.later_revisions_ok and not junk,
                   "bytes after the last revision: the file was changed after signing" if junk
                   else facts.detail)
        return
    trailing = _bytes_after_signed_range(signatures[0], data)
    if trailing:
        result.add("covers whole file", False, f"{trailing} byte(s) were added after the signed "
                   "bytes (after %%EOF): the file was changed after signing")
    else:
        result.add("covers whole file", facts.later_revisions_ok,
                   f"coverage {status.coverage.name}: nothing may follow the signed revision")


def _bytes_after_signed_range(signature, data: bytes) -> int:
    """How many bytes follow the end of the signature's /ByteRange (0 when it ends the file)."""
    try:
        ranges = [int(x) for x in signature.sig_object["/ByteRange"]]
        end = ranges[2] + ranges[3]
    except Exception:  # an unreadable /ByteRange: the coverage check reports it
        return 0
    return max(0, len(data) - end)


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def embedded_files(reader) -> dict[str, bytes]:
    """Name → content of the files in the document's EmbeddedFiles name tree."""
    names = reader.root["/Names"] if "/Names" in reader.root else {}
    if "/EmbeddedFiles" not in names:
        return {}
    tree = names["/EmbeddedFiles"]
    nodes = [tree, *[kid.get_object() for kid in tree["/Kids"]]] if "/Kids" in tree else [tree]
    files: dict[str, bytes] = {}
    for node in nodes:
        pairs = list(node["/Names"]) if "/Names" in node else []
        for name, spec in zip(pairs[::2], pairs[1::2]):
            files[str(name)] = spec.get_object()["/EF"]["/F"].data
    return files


def _info(reader) -> dict[str, str]:
    """The document information dictionary, keys normalised the way WeasyPrint writes custom
    metadata (lower case, letters and digits only)."""
    if "/Info" not in reader.trailer_view:
        return {}
    info = reader.trailer_view["/Info"]
    return {_key(str(k)): str(info[k]) for k in info}


def _manifest(reader) -> tuple[dict[str, str], str | None]:
    """name -> sha256 as printed on the cover. Each entry ends in ``=<64 hex digits>``, so it is
    split there: a ``;`` or ``=`` inside a name cannot shift the pairs."""
    info = _info(reader)
    text = info.get(_key(ATTACHMENTS_META), "")
    manifest, name = {}, ""
    for item in text.split(";"):
        head, sep, digest = item.rpartition("=")
        if sep and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
            manifest[name + head] = digest
            name = ""
        else:
            name += item + ";"
    return manifest, info.get(_key(REPORT_ID_META))


def _check_files(result: VerificationResult, reader) -> dict[str, bytes]:
    try:
        manifest, result.report_id = _manifest(reader)
        files = embedded_files(reader)
    except Exception as exc:
        result.add("embedded files", False, f"cannot read the embedded files: {exc}")
        return {}
    if not result.add("embedded files listed", bool(manifest), f"{len(manifest)} on the cover"):
        return files
    actual = {name: sha256_bytes(data) for name, data in files.items()}
    bad = sorted(n for n in set(manifest) | set(actual) if manifest.get(n) != actual.get(n))
    result.add("embedded files match cover", not bad,
               "all SHA-256 match" if not bad else f"mismatch: {', '.join(bad)}")
    return files


def _normal(doc: Any) -> Any:
    return json.loads(json.dumps(doc, sort_keys=True, default=str))


def _check_store(result: VerificationResult, evidence: dict[str, Any], db: Path,
                 wait: float) -> None:
    from auditor.report.evidence import TABLES, version_evidence
    from auditor.store import Store
    from auditor.store.versions import split_key

    with Store.open(db, read_only=True, wait=wait) as store:
        head = evidence.get("event_log")
        seq = head.get("seq") if isinstance(head, dict) else None
        rows = store.query("SELECT hash FROM events WHERE seq = ?",
                           [seq if isinstance(seq, int) and not isinstance(seq, bool) else -1])
        result.add("event log holds the report's head", bool(rows) and
                   rows[0]["hash"] == head.get("hash"), f"event #{seq}")
        log = store.verify_log()
        result.add("event log verifies", log.ok, "; ".join(log.problems[:3]) or
                   f"{log.events} events chained")
        try:
            stale = [v["key"] for v in evidence.get("versions", []) if _normal(version_evidence(
                store, *split_key(v["key"]), v["runs"])) != _normal({t: v[t] for t in TABLES})]
        except (KeyError, TypeError, AttributeError, ValueError, AuditorError):
            result.add("evidence matches store rows", False, "the embedded evidence is not in "
                       "the form auditor writes (edited or forged)")
            return
        result.add("evidence matches store rows", not stale,
                   "all cited rows equal" if not stale else f"differs for {', '.join(stale)}")


def read_pdf(path: Path) -> bytes:
    """The file's bytes: a regular file (not a device, FIFO or folder) of a sane size."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; no effect on a regular file
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ReportError(f"{path} is not a regular file (a device, FIFO or folder)")
            data = handle.read(MAX_PDF_BYTES + 1)
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_PDF_BYTES:
        raise ReportError(f"{path} is larger than {MAX_PDF_BYTES // 2**20} MiB: not a report")
    return data


def _evidence(result: VerificationResult, files: dict[str, bytes]) -> dict[str, Any]:
    """The embedded evidence (by its role), and a check that the store verified when the report
    was made: a report whose own evidence says otherwise is invalid."""
    try:
        evidence = json.loads(files[EVIDENCE_NAME])
    except (KeyError, ValueError, RecursionError):
        evidence = None
    if not result.add("evidence.json present", isinstance(evidence, dict) and bool(evidence),
                      "embedded evidence readable" if isinstance(evidence, dict)
                      else "missing, or not a JSON object"):
        return {}
    log = evidence.get("event_log")
    verified = isinstance(log, dict) and log.get("verified") is True
    result.add("evidence verified when made", verified,
               "the store's log verified when the report was made" if verified else
               "the report's own evidence says the store did NOT verify when it was made")
    return evidence


def verify_report(pdf: str | Path, *, trust: str | Path | None = None,
                  db: str | Path | None = None, wait: float = 0.0,
                  integrity_only: bool = False,
                  at: datetime | None = None) -> VerificationResult:
    """``at``: the moment to validate at when the signature has no trusted timestamp (default
    now); a timestamped signature is validated at its timestamp's time."""
    path = Path(pdf)
    data = read_pdf(path)
    if not data.lstrip()[:5] == b"%PDF-":
        raise ReportError(f"{path} is not a PDF file (it does not begin with %PDF-)")
    result = VerificationResult(path, integrity_only=integrity_only and trust is None)
    try:
        quiet_by_default()
        reader = _reader(data)
        _check_signature(result, reader, Path(trust) if trust else None, data, at)
        files = _check_files(result, reader)
    except ReportError:
        raise
    except Exception as exc:  # a damaged file: that is an invalid report, not a tool error
        result.add("readable PDF", False, f"{type(exc).__name__}: {exc}")
        return result
    evidence = _evidence(result, files)
    if db is not None:
        if not Path(db).is_file():
            raise ReportError(f"store {db} does not exist")
        if evidence:
            _check_store(result, evidence, Path(db), wait)
    return result
