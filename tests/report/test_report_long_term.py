"""Long-term signatures: PAdES B-T through a local RFC 3161 timestamp authority (HTTP on
127.0.0.1), B-LT with the CA's CRL in the DSS, B-LTA; validation at the timestamp's time after
the signer certificate expired; later revisions that only add validation data are accepted, any
other change is rejected. pyHanko, Poppler's pdfsig and OpenSSL check independently."""

from __future__ import annotations

import io
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pki import make_pki

from auditor.report import longterm
from auditor.report.sign import SignerSettings, level, load_signer, sign_pdf
from auditor.report.tsa import LocalTsa

LATER = timedelta(days=400)  # long after the one-minute signer certificate expired


@dataclass
class Signed:
    pki: object
    plain: bytes  # B-B
    bt: bytes
    blt: bytes
    blta: bytes
    tsa_requests: int


def _reader(data: bytes):
    from pyhanko.pdf_utils.reader import PdfFileReader

    return PdfFileReader(io.BytesIO(data))


def _roots(pki):
    from pyhanko.keys import load_cert_from_pemder

    return [load_cert_from_pemder(str(pki.root))]


@pytest.fixture(scope="module")
def signed(tmp_path_factory) -> Signed:
    from weasyprint import HTML

    pki = make_pki(tmp_path_factory.mktemp("pki"), signer_lifetime=timedelta(minutes=1))
    pdf = HTML(string="<html lang='en'><p>report</p></html>").write_pdf(pdf_variant="pdf/a-3b")
    base = SignerSettings(key=pki.key, cert=pki.cert, chain=(pki.root,))
    signer = load_signer(base)
    long_term = SignerSettings(key=pki.key, cert=pki.cert, chain=(pki.root,),
                               crls=(pki.crl,)).long_term()
    archive = SignerSettings(key=pki.key, cert=pki.cert, chain=(pki.root,), crls=(pki.crl,),
                             archive=True).long_term()
    with LocalTsa(pki.tsa) as tsa:
        out = Signed(pki, sign_pdf(pdf, signer), sign_pdf(pdf, signer, tsa_url=tsa.url),
                     sign_pdf(pdf, signer, tsa_url=tsa.url, long_term=long_term),
                     sign_pdf(pdf, signer, tsa_url=tsa.url, long_term=archive), 0)
        out.tsa_requests = tsa.requests
    return out


def test_levels_are_named():
    assert level(timestamped=False, long_term=None) == "B-B"
    assert level(timestamped=True, long_term=None) == "B-T"


def test_b_t_carries_a_trusted_timestamp_from_the_local_tsa(signed):
    assert signed.tsa_requests >= 3
    facts = longterm.validate(_reader(signed.bt), _roots(signed.pki))
    assert facts.intact and facts.valid and facts.trusted and facts.timestamp_trusted
    assert abs(facts.signed_at - datetime.now(timezone.utc)) < timedelta(minutes=30)
    assert facts.later_revisions == 0 and facts.later_revisions_ok
    plain = longterm.validate(_reader(signed.plain), _roots(signed.pki))
    assert plain.valid and plain.signed_at is None


def test_genuine_report_verifies_after_its_signer_certificate_expired(signed):
    later = signed.pki.not_after + LATER
    for data in (signed.bt, signed.blt, signed.blta):
        facts = longterm.validate(_reader(data), _roots(signed.pki), now=later)
        assert facts.valid and facts.trusted and facts.later_revisions_ok, facts.detail
        assert facts.checked_at == facts.signed_at < signed.pki.not_after
    # without a timestamp nothing proves when it was signed: untrusted once expired
    plain = longterm.validate(_reader(signed.plain), _roots(signed.pki), now=later)
    assert plain.intact and not plain.trusted


def test_b_lt_holds_the_crl_in_the_dss_and_b_lta_a_document_timestamp(signed):
    from pyhanko.sign.validation.dss import DocumentSecurityStore

    for data in (signed.blt, signed.blta):
        reader = _reader(data)
        dss = DocumentSecurityStore.read_dss(reader)
        assert len(dss.crls) >= 1 and len(list(dss.load_certs())) >= 2
        facts = longterm.validate(reader, _roots(signed.pki))
        assert facts.revocation_data and facts.later_revisions >= 1 and facts.later_revisions_ok
    kinds = [s.sig_object.get("/Type") for s in _reader(signed.blta).embedded_signatures]
    assert "/DocTimeStamp" in kinds


def test_an_appended_dss_revision_verifies(signed):
    from pyhanko.sign.validation import add_validation_info
    from pyhanko_certvalidator import ValidationContext

    from auditor.report.revocation import read_crls

    reader = _reader(signed.bt)
    context = ValidationContext(trust_roots=_roots(signed.pki), allow_fetching=False,
                                crls=read_crls((signed.pki.crl,)))
    appended = add_validation_info(reader.embedded_signatures[0], context).getvalue()
    assert appended.startswith(signed.bt) and len(appended) > len(signed.bt)
    facts = longterm.validate(_reader(appended), _roots(signed.pki))
    assert facts.valid and facts.trusted and facts.revocation_data
    assert facts.later_revisions == 1 and facts.later_revisions_ok


def _append_content_change(data: bytes) -> bytes:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(data))
    stream = generic.StreamObject(stream_data=b"BT /F1 24 Tf 72 72 Td (PASS) Tj ET")
    writer.add_stream_to_page(0, writer.add_object(stream))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize("which", ["bt", "blt"])
def test_an_appended_content_change_fails(signed, which):
    changed = _append_content_change(getattr(signed, which))
    facts = longterm.validate(_reader(changed), _roots(signed.pki))
    assert facts.intact and facts.later_revisions >= 1 and not facts.later_revisions_ok
    assert "changes beyond validation data" in facts.detail


def _nss(tmp_path: Path, root: Path) -> str:
    nss = tmp_path / "nss"
    nss.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nss}", "-n", "root", "-t", "C,C,C",
                    "-i", str(root)], check=True)
    return f"sql:{nss}"


def test_pdfsig_and_openssl_accept_signature_and_timestamp(signed, tmp_path):
    nss = _nss(tmp_path, signed.pki.root)
    for name in ("bt", "blt"):
        path = tmp_path / f"{name}.pdf"
        path.write_bytes(getattr(signed, name))
        out = subprocess.run(["pdfsig", "-nssdir", nss, str(path)], capture_output=True,
                             text=True, timeout=60).stdout
        assert "Signature is Valid" in out and "Certificate is Trusted" in out, out
        assert "Signing Time:" in out
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    # the signature-timestamp token, checked by OpenSSL against the same root: it stamps the
    # SHA-256 of the signature value (RFC 3161 / PAdES B-T)
    info = _reader(signed.bt).embedded_signatures[0].signer_info
    token = next(a["values"][0] for a in info["unsigned_attrs"]
                 if a["type"].native == "signature_time_stamp_token")
    (tmp_path / "token.der").write_bytes(token.dump())
    (tmp_path / "value.bin").write_bytes(info["signature"].native)
    result = subprocess.run(["openssl", "ts", "-verify", "-token_in", "-in",
                             str(tmp_path / "token.der"), "-data", str(tmp_path / "value.bin"),
                             "-CAfile", str(signed.pki.root)], capture_output=True, text=True,
                            timeout=60)
    assert "Verification: OK" in result.stdout, result.stderr


def test_local_tsa_answers_only_timestamp_queries(signed):
    with LocalTsa(signed.pki.tsa) as tsa:
        request = urllib.request.Request(tsa.url, data=b"not a query", method="POST",
                                         headers={"Content-Type": "application/timestamp-query"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 400 and tsa.requests == 0


@pytest.mark.slow
def test_a_real_report_signed_b_lt_verifies_after_expiry_and_rejects_changes(
        store_db, tmp_path, capsys):
    """A gate report from the session store, signed through the CLI with a one-minute signer
    certificate, a local TSA and the CA's CRL: verify (CLI and API) accepts it now and a year
    after the certificate expired; an appended DSS revision verifies; a content change fails;
    pdfsig agrees."""
    from pyhanko.sign.validation import add_validation_info
    from pyhanko_certvalidator import ValidationContext

    from auditor import api
    from auditor.cli import main
    from auditor.report.revocation import read_crls

    pki = make_pki(tmp_path / "pki", signer_lifetime=timedelta(minutes=15))
    db, keys = store_db
    with LocalTsa(pki.tsa) as tsa:
        code = main(["report", "--version", keys[-1], "--db", str(db), "--no-html",
                     "--out", str(tmp_path / "out"), "--key", str(pki.key), "--cert",
                     str(pki.cert), "--chain", str(pki.root), "--tsa-url", tsa.url,
                     "--crl", str(pki.crl)])
    assert code == 0, capsys.readouterr()
    pdf = next((tmp_path / "out").glob("*.pdf"))
    result = api.verify_report(pdf, trust=pki.root)
    assert result.valid, result.checks
    assert result.signed_at is not None and result.signed_at < pki.not_after
    later = api.verify_report(pdf, trust=pki.root, at=pki.not_after + LATER)
    assert later.valid, later.checks
    assert main(["verify", str(pdf), "--trust", str(pki.root)]) == 0
    assert "RFC 3161 timestamp" in capsys.readouterr().out
    # one more DSS revision (as a verifier refreshing validation data would add): still valid
    reader = _reader(pdf.read_bytes())
    context = ValidationContext(trust_roots=_roots(pki), allow_fetching=False,
                                crls=read_crls((pki.crl,)), moment=result.signed_at)
    appended = tmp_path / "appended.pdf"
    appended.write_bytes(add_validation_info(reader.embedded_signatures[0], context).getvalue())
    assert api.verify_report(appended, trust=pki.root).valid
    changed = tmp_path / "changed.pdf"
    changed.write_bytes(_append_content_change(pdf.read_bytes()))
    bad = api.verify_report(changed, trust=pki.root)
    assert not bad.valid
    assert [c.name for c in bad.checks if not c.ok] == ["covers whole file"]
    out = subprocess.run(["pdfsig", "-nssdir", _nss(tmp_path, pki.root), str(pdf)],
                         capture_output=True, text=True, timeout=60).stdout
    assert "Signature is Valid" in out and "Certificate is Trusted" in out, out
