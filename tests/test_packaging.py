"""The wheel carries templates/ and policies/, and the installed package finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_templates_and_policies(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("auditor-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for folder in ("templates", "policies"):
        shipped = {p.name for p in (ROOT / folder).iterdir() if p.is_file()}
        packed = {Path(n).name for n in names if n.startswith(f"auditor/_data/{folder}/")}
        assert shipped and shipped <= packed, folder
    assert "auditor/cli/__init__.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "auditor = auditor.cli:run" in zipfile.ZipFile(wheel).read(entry).decode()
