"""docs/tutorial.md is executed: its Python blocks run, its ``auditor`` lines run through the CLI
with the exit code the page promises (``# exit N`` at the end of a line; 0 otherwise)."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from auditor.cli import main

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial.md"
BLOCK = re.compile(r"```(bash|python)\n(.*?)```", re.S)
EXIT = re.compile(r"#\s*exit\s+(\d+)\s*$")


def steps(text: str) -> list[tuple[str, str, int]]:
    """(kind, code, expected exit) for each runnable piece of the page, in order."""
    found = []
    for kind, body in BLOCK.findall(text):
        if kind == "python":
            found.append(("python", body, 0))
            continue
        for line in body.splitlines():
            line = line.strip()
            if line.startswith("auditor "):
                expected = EXIT.search(line)
                command = EXIT.sub("", line).strip()
                found.append(("auditor", command, int(expected[1]) if expected else 0))
    return found


def run_auditor(command: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(shlex.split(command)[1:])
    return code, out.getvalue()


@pytest.mark.slow
def test_every_tutorial_command_runs_as_documented(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUDITOR_DEMO_PASSPHRASE", "tutorial-only")
    pieces = steps(TUTORIAL.read_text())
    assert sum(kind == "auditor" for kind, _, _ in pieces) >= 8
    for kind, code, expected in pieces:
        if kind == "python":
            exec(compile(code, str(TUTORIAL), "exec"), {"__name__": "__tutorial__"})
            continue
        status, output = run_auditor(code)
        assert status == expected, f"{code!r} exited {status}, the tutorial says {expected}:\n{output}"
    assert (tmp_path / "reports" / "report-release-gate-digits-v2.pdf").is_file()
    assert (tmp_path / "gate-v2.xml").read_text().count("<failure") >= 1
