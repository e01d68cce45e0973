"""Stored reports: what each one covers (read from the evidence embedded in its PDF) and a live
``auditor verify`` of it against the store."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

from auditor import api
from auditor.errors import AuditorError
from auditor.hashing import sha256_bytes
from auditor.logs import quiet_by_default
from auditor.report.verify import embedded_files
from auditor.store import Store

_MAX_PDF_BYTES = 256 << 20
_covers_cache: dict[str, dict[str, Any]] = {}
_cache_lock = threading.Lock()


def read_pdf(path: str) -> bytes | None:
    """The report file's bytes, or None when it is missing, unreadable, huge or not a PDF."""
    try:
        file = Path(path)
        if not file.is_file() or file.stat().st_size > _MAX_PDF_BYTES:
            return None
        data = file.read_bytes()
    except OSError:
        return None
    return data if data.lstrip()[:5] == b"%PDF-" else None


def _covers(data: bytes) -> dict[str, Any]:
    """Subject, period, verdict and version keys from the embedded evidence.json (cached by the
    file's digest: a report never changes without changing its digest)."""
    digest = sha256_bytes(data)
    with _cache_lock:
        if digest in _covers_cache:
            return _covers_cache[digest]
    found: dict[str, Any] = {"subject": None, "period": None, "verdict": None, "versions": []}
    try:
        from pyhanko.pdf_utils.reader import PdfFileReader

        quiet_by_default()
        doc = json.loads(embedded_files(PdfFileReader(io.BytesIO(data), strict=False))
                         .get("evidence.json", b"{}"))
        versions = doc.get("versions") if isinstance(doc, dict) else None
        found = {"subject": _text(doc.get("subject")), "period": _text(doc.get("period")),
                 "verdict": _text(doc.get("verdict")),
                 "versions": [{"key": _text(v.get("key")), "verdict": _text(v.get("verdict"))}
                              for v in versions if isinstance(v, dict)]
                 if isinstance(versions, list) else []}
    except Exception:  # a damaged or foreign PDF covers nothing we can name
        pass
    with _cache_lock:
        _covers_cache[digest] = found
    return found


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def report_rows(store: Store) -> list[dict[str, Any]]:
    return store.query("SELECT report_id, kind, path, sha256, signer, created_at FROM reports "
                       "ORDER BY created_at DESC, report_id")


def report_index(store: Store) -> list[dict[str, Any]]:
    """Every stored report with what it covers and whether its file is still the one stored."""
    entries = []
    for row in report_rows(store):
        data = read_pdf(row["path"])
        file = "missing" if data is None else \
            "ok" if sha256_bytes(data) == row["sha256"] else "changed"
        covers = _covers(data) if data is not None else \
            {"subject": None, "period": None, "verdict": None, "versions": []}
        entries.append(row | {"file": file, **covers})
    return entries


def verify(path: str | Path, *, trust: Path | None, db: Path | None,
           wait: float) -> dict[str, Any]:
    """``auditor verify`` as data: valid, every check, signer; an unusable input is an error."""
    try:
        result = api.verify_report(path, trust=trust, db=db, wait=wait)
    except AuditorError as exc:
        return {"valid": False, "error": str(exc), "checks": [], "signer": None, "demo": False,
                "trust_checked": False, "report_id": None}
    return {"valid": result.valid, "error": None,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in result.checks],
            "signer": result.signer, "demo": result.demo,
            "trust_checked": result.trust_checked, "report_id": result.report_id}
