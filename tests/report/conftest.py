"""Shared, session-scoped report fixtures: WeasyPrint is slow, so each report is rendered once
from a real DuckDB store and the tests read the same PDFs."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from report_data import PASSPHRASE, add_fidelity, populate  # noqa: E402

from auditor import api  # noqa: E402
from auditor.cli import main  # noqa: E402


@dataclass
class Rendered:
    pdf: Path
    html: Path
    text: str
    cli_output: str = ""


def pdftotext(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture(scope="session")
def report_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("reports")


@pytest.fixture(scope="session")
def demo_keys(report_dir):
    return api.init_keys(report_dir / "demo-keys", demo=True)


@pytest.fixture(scope="session")
def team_keys(report_dir):
    return api.init_keys(report_dir / "team-keys", name="Ana Lee", organisation="Example Labs",
                         passphrase=PASSPHRASE.encode())


@pytest.fixture(scope="session")
def store_db(report_dir) -> tuple[Path, list[str]]:
    db = report_dir / "audit.duckdb"
    with api.open_store(db) as store:
        keys = populate(store, 6)
        add_fidelity(store, keys[-1])
    return db, keys


@pytest.fixture(scope="session")
def gate(store_db, demo_keys, report_dir) -> Rendered:
    db, keys = store_db
    result = api.make_report(db=db, out_dir=report_dir / "gate", version=keys[-1],
                             signing=api.SignerSettings(p12=demo_keys.p12))
    return Rendered(result.pdf, result.html, pdftotext(result.pdf))


@pytest.fixture(scope="session")
def quarterly(store_db, team_keys, report_dir, monkeypatch_session) -> Rendered:
    """Rendered through the CLI with an encrypted PEM key and the passphrase in an env var."""
    db, _ = store_db
    monkeypatch_session.setenv("REPORT_PASSPHRASE", PASSPHRASE)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(["report", "--period", "2026-Q4", "--db", str(db),
                     "--out", str(report_dir / "quarterly"), "--key", str(team_keys.key),
                     "--cert", str(team_keys.cert), "--chain", str(team_keys.root),
                     "--passphrase-env", "REPORT_PASSPHRASE"])
    assert code == 0, out.getvalue()
    pdf = next((report_dir / "quarterly").glob("*.pdf"))
    return Rendered(pdf, pdf.with_suffix(".html"), pdftotext(pdf), out.getvalue())


@pytest.fixture(scope="session")
def monkeypatch_session():
    with pytest.MonkeyPatch.context() as patch:
        yield patch
