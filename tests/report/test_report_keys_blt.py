"""`auditor keys init` keeps its CA (key encrypted, owner-only) and issues a CRL, so a report
signed at PAdES B-LT needs no --crl: keys init → report --level B-LT (local RFC 3161 TSA) →
verify. `keys crl` renews the list and revokes; a revoked signer or a stale list is refused."""

from __future__ import annotations

import io
import stat
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from report_data import PASSPHRASE

from auditor.cli import main
from auditor.errors import SigningError
from auditor.report import longterm
from auditor.report.revocation import renew_crl, require_current
from auditor.report.sign import SignerSettings, load_signer, sign_pdf
from auditor.report.tsa import LocalTsa, issue_tsa

VAR = "BLT_TEST_PASSPHRASE"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blt") / "keys"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(VAR, PASSPHRASE)
        assert main(["keys", "init", str(folder), "--passphrase-env", VAR]) == 0
    return folder


def test_keys_init_keeps_an_encrypted_ca_key_and_issues_a_crl(keys, capsys):
    root = x509.load_pem_x509_certificate((keys / "root.pem").read_bytes())
    ca_key = keys / "root.key.pem"
    assert stat.S_IMODE(ca_key.stat().st_mode) == 0o600
    with pytest.raises(TypeError):  # encrypted: unreadable without the passphrase
        serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    key = serialization.load_pem_private_key(ca_key.read_bytes(), password=PASSPHRASE.encode())
    assert key.public_key().public_numbers() == root.public_key().public_numbers()
    crl = x509.load_der_x509_crl((keys / "root.crl").read_bytes())
    assert crl.issuer == root.subject and crl.is_signature_valid(root.public_key())
    assert len(crl) == 0 and crl.next_update_utc - datetime.now(timezone.utc) > timedelta(days=29)
    assert PASSPHRASE not in capsys.readouterr().out


def test_report_at_b_lt_finds_the_crl_and_verifies(keys, store_db, tmp_path, capsys,
                                                   monkeypatch):
    db, versions = store_db
    monkeypatch.setenv(VAR, PASSPHRASE)
    tsa = issue_tsa((keys / "root.pem").read_bytes(), (keys / "root.key.pem").read_bytes(),
                    passphrase=PASSPHRASE.encode())
    common = ["--db", str(db), "--out", str(tmp_path), "--p12", str(keys / "signer.p12"),
              "--passphrase-env", VAR, "--no-html"]
    assert main(["report", "--version", versions[0], *common, "--level", "B-LT"]) == 2
    assert "needs a timestamp authority" in capsys.readouterr().err
    with LocalTsa(tsa) as server:
        assert main(["report", "--version", versions[0], *common, "--level", "B-LT",
                     "--tsa-url", server.url]) == 0
    output = capsys.readouterr()
    assert PASSPHRASE not in output.out + output.err
    pdf = next(tmp_path.glob("*.pdf"))
    assert main(["verify", str(pdf), "--trust", str(keys / "root.pem")]) == 0
    assert "VALID" in capsys.readouterr().out
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.pdf_utils.reader import PdfFileReader

    facts = longterm.validate(PdfFileReader(io.BytesIO(pdf.read_bytes())),
                              [load_cert_from_pemder(str(keys / "root.pem"))])
    assert facts.valid and facts.trusted and facts.timestamp_trusted, facts.detail
    assert facts.revocation_data and facts.later_revisions_ok


def test_keys_crl_renews_and_a_revoked_signer_cannot_sign_at_b_lt(keys, tmp_path, monkeypatch):
    from weasyprint import HTML

    folder = tmp_path / "copy"
    folder.mkdir()
    for name in ("root.pem", "root.key.pem", "root.crl", "signer.p12"):
        (folder / name).write_bytes((keys / name).read_bytes())
    monkeypatch.setenv(VAR, PASSPHRASE)
    with pytest.raises(SigningError, match="passphrase"):
        renew_crl(folder)
    assert main(["keys", "crl", str(folder), "--passphrase-env", VAR]) == 0
    number = x509.load_der_x509_crl((folder / "root.crl").read_bytes()).extensions.\
        get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == 2
    settings = SignerSettings(p12=folder / "signer.p12", passphrase_env=VAR, level="B-LT",
                              tsa_url="http://127.0.0.1:9/unused").at_level()
    signer = load_signer(settings)
    serial = signer.signing_cert.serial_number
    assert main(["keys", "crl", str(folder), "--passphrase-env", VAR,
                 "--revoke", str(serial)]) == 0
    revoked = x509.load_der_x509_crl((folder / "root.crl").read_bytes())
    assert revoked.get_revoked_certificate_by_serial_number(serial) is not None
    pdf = HTML(string="<html lang='en'><p>report</p></html>").write_pdf()
    with LocalTsa(issue_tsa((folder / "root.pem").read_bytes(),
                            (folder / "root.key.pem").read_bytes(),
                            passphrase=PASSPHRASE.encode())) as server:
        settings = SignerSettings(p12=folder / "signer.p12", passphrase_env=VAR, level="B-LT",
                                  tsa_url=server.url).at_level()
        with pytest.raises(SigningError, match="is revoked"):
            sign_pdf(pdf, signer, tsa_url=server.url, long_term=settings.long_term())
    with pytest.raises(SigningError, match="keys crl"):
        require_current(folder / "root.crl", now=datetime.now(timezone.utc) + timedelta(days=31))
    with pytest.raises(SigningError, match="root.crl does not exist"):
        (folder / "root.crl").unlink()
        settings.at_level()
