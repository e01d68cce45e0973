"""Render + sign of a quarterly report over 30 versions, against WeasyPrint alone.

Prints seconds for each step (store → context, evidence files + HTML, WeasyPrint HTML → PDF/A-3b,
PAdES signing, verification) and the ratio of the total (context + HTML + PDF + signing) to
WeasyPrint alone on the same HTML (goal ≤ 1.3×), best of ``--repeats``.

    PYTHONPATH=$PWD python bench/report.py [--versions 30] [--repeats 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "report"))

from pki import make_pki  # noqa: E402
from report_data import add_fidelity, populate  # noqa: E402

from auditor import api  # noqa: E402
from auditor.report.context import build_context  # noqa: E402
from auditor.report.render import embedded_files, html_to_pdf, render_html  # noqa: E402
from auditor.report.sign import SignerSettings, load_signer, sign_pdf, signer_name  # noqa: E402
from auditor.report.tsa import LocalTsa  # noqa: E402
from auditor.report.verify import verify_report  # noqa: E402


def _timed(action):
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def sign_long_term(pdf: bytes, folder: Path) -> tuple[float, bytes]:
    """PAdES B-LT: an RFC 3161 timestamp from a local TSA (HTTP on 127.0.0.1) and the CA's CRL
    and certificates in the DSS."""
    pki = make_pki(folder / "pki")
    settings = SignerSettings(key=pki.key, cert=pki.cert, chain=(pki.root,), crls=(pki.crl,))
    signer = load_signer(settings)
    with LocalTsa(pki.tsa) as tsa:
        return _timed(lambda: sign_pdf(pdf, signer, tsa_url=tsa.url,
                                       long_term=settings.long_term()))


def one_round(db: Path, keys, folder: Path) -> dict[str, float]:
    signer = load_signer(SignerSettings(p12=keys.p12))
    times = {}
    with api.open_store(db, read_only=True) as store:
        times["context"], context = _timed(lambda: build_context(store, period="2026-Q4"))
    context.signer = signer_name(signer)
    times["html"], (files, html) = _timed(lambda: (lambda f: (f, render_html(context, f)))(
        embedded_files(context)))
    times["weasyprint"], pdf = _timed(lambda: html_to_pdf(html, files, context.report_id))
    times["sign"], signed = _timed(lambda: sign_pdf(pdf, signer))
    times["sign B-LT"], _ = sign_long_term(pdf, folder)
    path = folder / "quarterly.pdf"
    path.write_bytes(signed)
    times["verify"], result = _timed(lambda: verify_report(path, trust=keys.root, db=db))
    assert result.valid, result.checks
    times["bytes"], times["versions"] = len(signed), len(context.versions)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = folder / "bench.duckdb"
        with api.open_store(db) as store:
            keys_ = populate(store, args.versions)
            add_fidelity(store, keys_[-1])
        keys = api.init_keys(folder / "keys")
        rounds = [one_round(db, keys, folder) for _ in range(args.repeats)]
        best = min(rounds, key=lambda r: r["context"] + r["html"] + r["weasyprint"] + r["sign"])
        pages = subprocess.run(["pdfinfo", str(folder / "quarterly.pdf")], capture_output=True,
                               text=True).stdout
        page_count = next((line.split()[-1] for line in pages.splitlines()
                           if line.startswith("Pages:")), "?")
    total = best["context"] + best["html"] + best["weasyprint"] + best["sign"]
    print(f"quarterly report: {best['versions']} versions, {page_count} pages, "
          f"{best['bytes'] / 1e6:.2f} MB signed PDF")
    for step in ("context", "html", "weasyprint", "sign", "sign B-LT", "verify"):
        print(f"  {step:<11} {best[step]:7.3f} s")
    print(f"  total       {total:7.3f} s (context + html + weasyprint + sign)")
    print(f"  ratio total / weasyprint alone: {total / best['weasyprint']:.3f}x (goal <= 1.3x)")
    long_term = total - best["sign"] + best["sign B-LT"]
    print(f"  ratio with B-LT signing (local TSA, CRL in the DSS): "
          f"{long_term / best['weasyprint']:.3f}x")


if __name__ == "__main__":
    main()
