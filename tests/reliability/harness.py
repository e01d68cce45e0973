"""Run one corpus case through the real CLI and say how it was met."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from corpus import PWNED, Case
from lockholder import release_all

from auditor.cli import main


@dataclass(frozen=True)
class Outcome:
    case: str
    exit_code: int
    message: str
    store_unchanged: bool
    payload_ran: bool

    @property
    def clean(self) -> bool:
        return (self.exit_code == 2 and self.store_unchanged and not self.payload_ran
                and self.message.startswith("auditor: error: ") and "\n" not in self.message)


def store_state(db: Path) -> str:
    """The event-log head when the file opens as a store, else the file's bytes' hash."""
    from auditor.errors import AuditorError
    from auditor.store import Store

    try:
        with Store.open(db, read_only=True) as store:
            return "head:" + store.head_hash()
    except AuditorError:
        return "bytes:" + hashlib.sha256(db.read_bytes()).hexdigest()


def run_case(case: Case, template_db: Path, work: Path) -> Outcome:
    work.mkdir(parents=True, exist_ok=True)
    db = work / "auditor.duckdb"
    shutil.copy(template_db, db)
    previous = Path.cwd()
    os.chdir(work)  # a pickle payload would write PWNED here
    try:
        argv = case.make(work, db)
        before = store_state(db)
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
        after = store_state(db)  # before any lock holder lets go, like ``before``
    finally:
        release_all()
        os.chdir(previous)
    return Outcome(case.name, code, stderr.getvalue().strip(), after == before,
                   (work / PWNED).exists())
