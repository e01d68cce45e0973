"""The CLI's error contract: one line and exit 2; --verbose adds the traceback."""

from __future__ import annotations

import subprocess
import sys

from auditor.cli import main


def test_error_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "lineage.yaml"
    bad.write_text("model: m\nversion: v\nstages: [\n")
    code = main(["lineage", "import", str(bad), "--db", str(tmp_path / "a.duckdb")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("auditor: error:") and "lineage.yaml:" in err[0]


def test_verbose_shows_traceback(tmp_path, capsys):
    code = main(["--verbose", "lineage", "import", str(tmp_path / "missing.yaml"),
                 "--db", str(tmp_path / "a.duckdb")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" in err and "file not found" in err


def test_console_script_exit_codes(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "auditor", "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "lineage" in ok.stdout
    usage = subprocess.run([sys.executable, "-m", "auditor", "--no-such-option"],
                           capture_output=True, text=True)
    assert usage.returncode == 2
