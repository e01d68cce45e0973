"""Secrets: a realistic flow with a known signing passphrase leaves neither the passphrase nor
the private key anywhere but the keys folder.

The flow runs as real ``auditor --verbose`` processes (debug logging on): ``keys init`` with
``--passphrase-env``, ``lineage add``, ``attribute``, ``gate``, two signed reports (PKCS#12, and
PEM key + certificate), one attempt with a wrong passphrase, ``verify`` and ``log verify``. Then
it scans every captured stdout/stderr line, the PDFs (raw, every decompressed stream, the text),
the HTML twins, the files ``pdfdetach`` extracts, the DuckDB file's bytes and every table's
text, and every other file written outside the keys folder (HOME and TMPDIR included) for the
passphrase (and the wrong one), and for the private key: the body lines of its unencrypted PEM
(PKCS#8 and traditional), slices of its DER bytes and its private numbers.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import zlib
from pathlib import Path

import duckdb
import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.paths import TESTS, WORKER_PATH

sys.path.insert(0, str(TESTS / "execution"))

from tinyaudit import record_tiny  # noqa: E402

from auditor.report.keys import init_keys  # noqa: E402

PASS_VAR, WRONG_VAR = "AUDITOR_TEST_SIGNING_PASSPHRASE", "AUDITOR_TEST_WRONG_PASSPHRASE"


def run(work: Path, env: dict[str, str], *argv, expect: int | tuple[int, ...] = 0) -> str:
    """One ``auditor --verbose`` process in ``work``; its stdout and stderr together."""
    done = subprocess.run([sys.executable, "-m", "auditor", "--verbose", *map(str, argv)],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode in ((expect,) if isinstance(expect, int) else expect), \
        (argv, done.stdout[-2000:], done.stderr[-2000:])
    return f"$ auditor {' '.join(map(str, argv))}\n{done.stdout}\n{done.stderr}\n"


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    base = tmp_path_factory.mktemp("secrets")
    work, home, tmp = base / "work", base / "home", base / "tmp"
    for folder in (work, home, tmp):
        folder.mkdir()
    passphrase = f"pass-{secrets.token_urlsafe(18)}"
    wrong = passphrase[:-3] + "xyz"
    env = {**os.environ, PASS_VAR: passphrase, WRONG_VAR: wrong, "HOME": str(home),
           "TMPDIR": str(tmp), "PYTHONPATH": WORKER_PATH}
    record_tiny(work / "v000", 0, steps=2)
    db, keys, key = "auditor.duckdb", work / "K", "tiny@v000"
    output = [
        run(work, env, "keys", "init", keys, "--passphrase-env", PASS_VAR),
        run(work, env, "lineage", "add", "v000", "--db", db),
        run(work, env, "attribute", "--version", key, "--estimator", "naive",
            "--behaviours", "tinyaudit:behaviours", "--db", db),
        run(work, env, "gate", "--version", key, "--db", db, expect=(0, 1)),
        run(work, env, "report", "--version", key, "--p12", keys / "signer.p12",
            "--passphrase-env", PASS_VAR, "--out", "reports-p12", "--db", db),
        run(work, env, "report", "--version", key, "--key", keys / "signer.key.pem",
            "--cert", keys / "signer.pem", "--chain", keys / "root.pem",
            "--passphrase-env", PASS_VAR, "--out", "reports-pem", "--db", db),
        run(work, env, "report", "--version", key, "--p12", keys / "signer.p12",
            "--passphrase-env", WRONG_VAR, "--out", "reports-wrong", "--db", db, expect=2),
    ]
    pdfs = sorted(work.glob("reports-*/*.pdf"))
    output += [run(work, env, "verify", pdf, "--trust", keys / "root.pem", "--db", db)
               for pdf in pdfs]
    output.append(run(work, env, "log", "verify", "--db", db))
    return base, "".join(output), passphrase, wrong


def key_needles(keys: Path, passphrase: str) -> dict[str, bytes]:
    """Distinctive pieces of the private key, and copies of its (encrypted) files."""
    encrypted = (keys / "signer.key.pem").read_bytes()
    key = serialization.load_pem_private_key(encrypted, passphrase.encode())
    none = serialization.NoEncryption()
    needles = {}
    forms = {"PKCS8": serialization.PrivateFormat.PKCS8,
             "traditional": serialization.PrivateFormat.TraditionalOpenSSL}
    for label, form in forms.items():
        pem = key.private_bytes(serialization.Encoding.PEM, form, none)
        needles |= {f"{label} PEM line {i}": line for i, line in enumerate(pem.splitlines())
                    if len(line) >= 40}
        der = key.private_bytes(serialization.Encoding.DER, form, none)
        needles |= {f"{label} DER[{i}:]": der[i:i + 24] for i in range(0, len(der) - 24, 97)}
    numbers = key.private_numbers()
    for name, value in (("d", numbers.d), ("p", numbers.p), ("q", numbers.q)):
        needles[f"{name} hex"] = format(value, "x")[:48].encode()
        needles[f"{name} decimal"] = str(value)[:48].encode()
        needles[f"{name} bytes"] = value.to_bytes((value.bit_length() + 7) // 8, "big")[:24]
    needles |= {f"encrypted PEM line {i}": line
                for i, line in enumerate(encrypted.splitlines()) if len(line) >= 40}
    p12 = (keys / "signer.p12").read_bytes()
    needles |= {f"p12[{i}:]": p12[i:i + 24] for i in range(64, len(p12) - 24, 211)}
    return needles


def secret_needles(passphrase: str, wrong: str) -> dict[str, bytes]:
    needles = {}
    for name, value in (("passphrase", passphrase), ("wrong passphrase", wrong)):
        raw = value.encode()
        needles |= {name: raw, f"{name} (hex)": raw.hex().encode(),
                    f"{name} (base64)": base64.b64encode(raw)[:-4],
                    f"{name} (utf-16)": value.encode("utf-16-le")}
    return needles


def pdf_streams(data: bytes) -> list[bytes]:
    """Every stream of a PDF, inflated where it is Flate-compressed."""
    streams = []
    for match in re.finditer(rb"stream\r?\n(.*?)endstream", data, re.S):
        chunk = match.group(1)
        try:
            streams.append(zlib.decompressobj().decompress(chunk))
        except zlib.error:
            streams.append(chunk)
    return streams


def scanned_sources(base: Path, output: str) -> dict[str, bytes]:
    """Everything to scan, by name: outputs, report parts, the database, every file written
    outside the keys folder."""
    work = base / "work"
    sources = {"stdout and stderr of every command": output.encode()}
    for path in sorted(base.rglob("*")):
        if path.is_file() and (work / "K") not in path.parents:
            sources[str(path.relative_to(base))] = path.read_bytes()
    pdfs = sorted(work.glob("reports-*/*.pdf"))
    assert len(pdfs) == 2 and not list(work.glob("reports-wrong/*"))
    for pdf in pdfs:
        data = pdf.read_bytes()
        for i, stream in enumerate(pdf_streams(data)):
            sources[f"{pdf.name} stream {i}"] = stream
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, check=True)
        sources[f"{pdf.name} text"] = text.stdout
        folder = base / "detached" / pdf.parent.name
        folder.mkdir(parents=True)
        subprocess.run(["pdfdetach", "-saveall", "-o", str(folder), str(pdf)], check=True)
        attached = sorted(folder.iterdir())
        assert len(attached) >= 5, attached  # the evidence files really were extracted
        sources |= {f"{pdf.name} attachment {p.name}": p.read_bytes() for p in attached}
    sources |= database_text(work / "auditor.duckdb")
    return sources


def database_text(db: Path) -> dict[str, bytes]:
    with duckdb.connect(str(db), read_only=True) as con:
        tables = [row[0] for row in con.sql(
            "SELECT table_name FROM information_schema.tables").fetchall()]
        assert {"events", "reports", "runs", "stage_scores", "versions"} <= set(tables)
        return {f"table {table}": repr(con.sql(f'SELECT * FROM "{table}"').fetchall()).encode()
                for table in tables}


def leaks(sources: dict[str, bytes], needles: dict[str, bytes]) -> list[str]:
    return [f"{needle} in {source}" for source, data in sources.items()
            for needle, value in needles.items() if value in data]


def test_flow_worked_and_the_wrong_passphrase_was_refused(flow):
    base, output, _, _ = flow
    assert "cannot load the signing key and certificate (wrong passphrase" in output
    assert output.count(": VALID") == 2 and "DEBUG" in output  # signed, verified, verbose
    assert len(list((base / "work").glob("reports-*/*.html"))) == 2


def test_no_passphrase_or_key_material_outside_the_keys_folder(flow):
    base, output, passphrase, wrong = flow
    needles = secret_needles(passphrase, wrong) | key_needles(base / "work" / "K", passphrase)
    sources = scanned_sources(base, output)
    assert len(needles) > 40 and len(sources) > 30
    # The scan does find a leak: the same output with an unencrypted copy of the key in it.
    encrypted = (base / "work" / "K" / "signer.key.pem").read_bytes()
    key = serialization.load_pem_private_key(encrypted, passphrase.encode())
    plain = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode()
    assert leaks({**sources, "stdout and stderr of every command": (output + plain).encode()},
                 needles)
    assert leaks(sources, needles) == []


def test_private_key_files_are_owner_only(flow, tmp_path):
    keys = flow[0] / "work" / "K"
    for name in ("signer.key.pem", "signer.p12"):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600, name
    # Replacing keys (--force) over files someone opened up keeps them owner-only too.
    copy = tmp_path / "K"
    shutil.copytree(keys, copy)
    for name in ("signer.key.pem", "signer.p12"):
        (copy / name).chmod(0o644)
    init_keys(copy, passphrase=b"another passphrase", overwrite=True)
    for name in ("signer.key.pem", "signer.p12"):
        assert stat.S_IMODE((copy / name).stat().st_mode) == 0o600, name
