"""Signing and verification: pyHanko and Poppler's pdfsig both accept the signed reports; a
flipped byte, an appended incremental update, a foreign trust root or edited store rows are
rejected (exit 1); signing problems are errors (exit 2); passphrases never leak."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest
from report_data import PASSPHRASE

from auditor import api
from auditor.cli import main
from auditor.errors import SigningError


def _verify(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["verify", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_pyhanko_validates_both_reports(gate, quarterly, demo_keys, team_keys, store_db):
    for rendered, keys in ((gate, demo_keys), (quarterly, team_keys)):
        result = api.verify_report(rendered.pdf, trust=keys.root, db=store_db[0])
        assert result.valid, result.checks
        names = {c.name for c in result.checks}
        assert {"signature intact", "signature valid", "signer trusted", "covers whole file",
                "embedded files match cover", "evidence matches store rows",
                "event log holds the report's head"} <= names
    assert "Ana Lee" in api.verify_report(quarterly.pdf).signer


def test_cli_verify_exit_0_and_demo_flag(gate, demo_keys, store_db, capsys):
    code, out, err = _verify(capsys, str(gate.pdf), "--trust", str(demo_keys.root),
                             "--db", str(store_db[0]))
    assert code == 0, out
    assert ": VALID" in out and "DEMO identity" in out and not err


def test_pdfsig_independently_accepts_the_signature(gate, demo_keys, tmp_path):
    nss = tmp_path / "nss"
    nss.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nss}", "-n", "auditor-root", "-t", "C,C,C",
                    "-i", str(demo_keys.root)], check=True)
    # (with -no-ocsp, pdfsig 22.12 reports "Unknown issue with Certificate": leave it out; the
    # certificates carry no OCSP address, so nothing is fetched)
    out = subprocess.run(["pdfsig", "-nssdir", f"sql:{nss}", str(gate.pdf)],
                         capture_output=True, text=True, timeout=60).stdout
    assert "Signature is Valid" in out
    assert "Total document signed" in out
    assert "Certificate is Trusted" in out


def test_flipped_byte_is_rejected(gate, demo_keys, tmp_path, capsys):
    data = bytearray(gate.pdf.read_bytes())
    offset = len(data) // 3  # inside the first signed byte range (the signature is near the end)
    data[offset] ^= 0x01
    broken = tmp_path / "flipped.pdf"
    broken.write_bytes(bytes(data))
    code, out, err = _verify(capsys, str(broken), "--trust", str(demo_keys.root))
    assert code == 1 and "INVALID" in out and "Traceback" not in err
    assert "FAIL signature intact" in out or "FAIL readable PDF" in out


def test_incremental_update_is_rejected(gate, demo_keys, tmp_path, capsys):
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(gate.pdf.read_bytes()))
    writer.root["/AuditorNote"] = generic.TextStringObject("changed after signing")
    writer.update_root()
    out_buf = io.BytesIO()
    writer.write(out_buf)
    updated = tmp_path / "updated.pdf"
    updated.write_bytes(out_buf.getvalue())
    code, out, _ = _verify(capsys, str(updated), "--trust", str(demo_keys.root))
    assert code == 1 and "FAIL covers whole file" in out


def test_foreign_trust_root_is_rejected_quietly(gate, team_keys, capsys):
    code, out, err = _verify(capsys, str(gate.pdf), "--trust", str(team_keys.root))
    assert code == 1 and "FAIL signer trusted" in out
    assert err == ""


def test_edited_store_rows_are_detected(gate, demo_keys, store_db, tmp_path, capsys):
    db = tmp_path / "edited.duckdb"
    shutil.copy(store_db[0], db)
    with api.open_store(db) as store:
        store.query("UPDATE stage_scores SET effect = effect + 0.5 WHERE version = ?",
                    [store_db[1][-1].split("@")[1]])
    code, out, _ = _verify(capsys, str(gate.pdf), "--trust", str(demo_keys.root), "--db", str(db))
    assert code == 1
    assert "FAIL evidence matches store rows" in out and "FAIL event log verifies" in out


def test_unsigned_report_is_invalid(store_db, tmp_path, capsys):
    db = tmp_path / "copy.duckdb"
    shutil.copy(store_db[0], db)
    result = api.make_report(db=db, out_dir=tmp_path, version=store_db[1][0], html=False)
    code, out, _ = _verify(capsys, str(result.pdf))
    assert code == 1 and "FAIL signed" in out
    names = [c.name for c in api.verify_report(result.pdf).checks]
    assert "embedded files match cover" in names and "evidence verified when made" in names


def test_wrong_passphrase_is_an_error_and_not_echoed(team_keys, store_db, tmp_path, capsys,
                                                     monkeypatch):
    monkeypatch.setenv("WRONG_PASS", "not-the-passphrase-xyzzy")
    code = main(["report", "--version", store_db[1][0], "--db", str(store_db[0]),
                 "--out", str(tmp_path), "--key", str(team_keys.key), "--cert",
                 str(team_keys.cert), "--passphrase-env", "WRONG_PASS"])
    captured = capsys.readouterr()
    assert code == 2 and "cannot load the signing key" in captured.err
    assert "xyzzy" not in captured.err + captured.out
    with pytest.raises(SigningError, match="MISSING_VAR"):
        api.make_report(db=store_db[0], out_dir=tmp_path, version=store_db[1][0],
                        signing=api.SignerSettings(p12=team_keys.p12,
                                                   passphrase_env="MISSING_VAR"))


def test_passphrase_file_works_and_never_leaks(quarterly, team_keys, tmp_path):
    from auditor.report.sign import SignerSettings, load_signer

    secret = tmp_path / "pass.txt"
    secret.write_text(PASSPHRASE + "\n")
    signer = load_signer(SignerSettings(p12=team_keys.p12, passphrase_file=secret))
    assert "Ana Lee" in signer.signing_cert.subject.human_friendly
    for blob in (quarterly.cli_output.encode(), quarterly.pdf.read_bytes(),
                 quarterly.html.read_bytes()):
        assert PASSPHRASE.encode() not in blob
    assert "signed by" in quarterly.cli_output


def test_corrupted_signature_blob_is_invalid_not_an_error(gate, demo_keys, tmp_path, capsys):
    data = bytearray(gate.pdf.read_bytes())
    import re

    ranges = re.search(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)", bytes(data))
    offset = int(ranges[2]) + 1 + 600  # the unsigned gap holds <hex CMS>: past its header
    data[offset:offset + 8] = b"00000000" if data[offset:offset + 8] != b"00000000" else b"11111111"
    broken = tmp_path / "blob.pdf"
    broken.write_bytes(bytes(data))
    code, out, err = _verify(capsys, str(broken), "--trust", str(demo_keys.root))
    assert code == 1 and "INVALID" in out and "Traceback" not in err


_HOLD = """
import sys
from auditor.store import Store
with Store.open(sys.argv[1]):
    print("ready", flush=True)
    sys.stdin.readline()
"""


def test_verify_against_a_busy_store_waits_with_wait(gate, demo_keys, store_db, tmp_path):
    """Another process holding the store: a lock message (exit 2) without --wait, and with
    --wait the check runs once the holder lets go."""
    import sys
    import threading

    db = tmp_path / "busy.duckdb"
    shutil.copy(store_db[0], db)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "ready"
    verify = [sys.executable, "-m", "auditor", "verify", str(gate.pdf), "--trust",
              str(demo_keys.root), "--db", str(db)]
    try:
        refused = subprocess.run(verify, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2
        assert f"(PID {holder.pid}) holds {db}" in refused.stderr
        release = threading.Timer(1.0, lambda: holder.communicate("\n", timeout=60))
        release.start()
        waited = subprocess.run([*verify, "--wait", "60"], capture_output=True, text=True,
                                timeout=120)
        release.join()
    finally:
        if holder.poll() is None:
            holder.kill()
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert ": VALID" in waited.stdout
