"""Failure behaviour as figures: bad inputs cleanly rejected, code-execution attempts refused
(nothing ran), resource-exhaustion attempts refused within a time bound, crash trials recovered
with identical scores, tamper cases detected. Each must be 100%.

Run: .venv/bin/python bench/faults.py [--trials 20]
(The same cases run as tests in tests/reliability/; this prints the tally. The test helper
module ``tinytask`` is allowed as a task module, the way a user allows their own task code.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "reliability"), str(TESTS / "execution")]

os.environ.setdefault("AUDITOR_ALLOW_TASKS", "tests.support tinytask")
from corpus import CASES, LINEAGE, write_lineage  # noqa: E402
from crash import crash_trial, make_fixture, run_audit, scores  # noqa: E402
from harness import run_case  # noqa: E402
from tamper import TAMPERS, copy_evidence, detected, make_evidence  # noqa: E402

from auditor.cli import main  # noqa: E402

CODE, EXHAUSTION = "code-execution", "resource-exhaustion"
TIME_BOUND_S = 10.0  # a resource-exhaustion attempt must be refused within this


def _template(work: Path) -> Path:
    template = work / "template" / "auditor.duckdb"
    if not template.exists():
        template.parent.mkdir(parents=True)
        lineage = write_lineage(template.parent, LINEAGE.replace("version: v9", "version: v1"))
        assert main(["lineage", "import", str(lineage), "--db", str(template)]) == 0
    return template


def corpus(work: Path, rooms: set[str], exclude: bool = False) -> tuple[int, int, list[str]]:
    """Corpus cases of ``rooms`` (or of every other room): exit 2, one line naming the problem,
    the store unchanged, no payload run; a resource-exhaustion attempt also within
    TIME_BOUND_S (the other cases may be slow on a loaded machine: they record, or make keys)."""
    template = _template(work)
    cases = [c for c in CASES if (c.room in rooms) != exclude]
    missed = []
    for case in cases:
        started = time.perf_counter()
        outcome = run_case(case, template, work / "cases" / case.name)
        took = time.perf_counter() - started
        slow = case.room == EXHAUSTION and took >= TIME_BOUND_S  # only exhaustion is timed
        if not (outcome.clean and case.expect in outcome.message) or slow:
            missed.append(f"{case.name} ({took:.1f} s): {outcome}")
    return len(cases), len(cases) - len(missed), missed


def crash_trials(work: Path, trials: int) -> tuple[int, int, list[str]]:
    template, spec = make_fixture(work / "crash")
    reference_db = work / "crash" / "reference.duckdb"
    shutil.copy(template, reference_db)
    took = run_audit(spec, reference_db)
    reference = scores(reference_db)
    results = [crash_trial(seed, template, spec, work / "crash", reference, took)
               for seed in range(trials)]
    missed = [str(t) for t in results if not t.recovered]
    phases = Counter("before any write" if t.runs_complete_at_kill == 0 else
                     "after the last write" if t.runs_complete_at_kill > 6 else
                     "between writes" for t in results)
    print(f"  crash: uninterrupted audit {took:.2f} s; killed {dict(phases)}")
    return trials, trials - len(missed), missed


def tamper_cases(work: Path) -> tuple[int, int, list[str]]:
    evidence = make_evidence(work / "evidence")
    missed = []
    for case in TAMPERS:
        found, output = detected(case, copy_evidence(evidence, work / "tamper" / case.name))
        if not found:
            missed.append(f"{case.name}: {output[-300:]}")
    return len(TAMPERS), len(TAMPERS) - len(missed), missed


def line(label: str, verb: str, tried: int, handled: int, missed: list[str]) -> bool:
    print(f"{label:<12} {tried:>3} tried, {handled:>3} {verb:<28} {handled / tried:7.1%}",
          flush=True)
    for problem in missed:
        print(f"    MISSED {problem}")
    return handled == tried


def main_bench() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="crash trials (default 20)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="auditor-faults-") as tmp:
        work = Path(tmp)
        special = {CODE, EXHAUSTION}
        figures = [("bad inputs", "cleanly rejected (exit 2)", corpus(work, special, True)),
                   ("code exec", "refused, nothing ran", corpus(work, {CODE})),
                   ("exhaustion", f"refused in < {TIME_BOUND_S:g} s", corpus(work, {EXHAUSTION})),
                   ("crashes", "recovered, identical scores", crash_trials(work, args.trials)),
                   ("tampering", "detected", tamper_cases(work))]
    print()
    ok = [line(label, verb, *result) for label, verb, result in figures]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main_bench())
