"""Cost of scoring behaviours from stored stage embeddings, and the memory ``aa`` keeps.

    python bench/scoring.py [--queries 256] [--repeats 3]

Prints (1) the time to score Q per-example behaviours from embeddings saved on disk (load with
hash check + one gradient and K dot products per behaviour) against the bare
``torch.autograd.grad`` of the same Q behaviours, (2) the same Q losses declared as one
ProbeFamily (scored by K batched forward-mode passes), and (3) the floats ``aa`` holds while it
prepares embeddings, as a multiple of K·P.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auditor.behaviours.base import Behaviour  # noqa: E402
from auditor.behaviours.library import example_losses  # noqa: E402
from auditor.demo import digits  # noqa: E402
from auditor.demo.record import record_version  # noqa: E402
from auditor.estimators import get_estimator  # noqa: E402
from auditor.estimators.embeddings import load_embeddings, save_embeddings  # noqa: E402
from auditor.estimators.propagation.h0 import H0Propagator  # noqa: E402
from auditor.estimators.propagation.trajectory import all_coefficients  # noqa: E402
from auditor.estimators.scoring.gradients import score_by_gradients  # noqa: E402
from auditor.lineage.counterfactual import final_model  # noqa: E402
from auditor.lineage.sketching.layout import ParamLayout, stage_displacements  # noqa: E402
from bench.fidelity_scenarios import long_plan  # noqa: E402


def per_example(count: int) -> list[Behaviour]:
    """Q single behaviours (no family: one backward pass each)."""
    x, y = digits.probes()["clean"]
    picks = [i % len(y) for i in range(count)]
    return [Behaviour(name=f"loss[{i}]", direction="harm",
                      surrogate=lambda m, i=i: torch.nn.functional.cross_entropy(
                          m(x[i:i + 1]), y[i:i + 1]))
            for i in picks]


def family(count: int) -> list[Behaviour]:
    """The same Q losses as members of one ProbeFamily."""
    x, y = digits.probes()["clean"]
    picks = torch.tensor([i % len(y) for i in range(count)])
    return example_losses("loss", x[picks], y[picks])


def bare_gradients(model, behaviours) -> float:
    params = [p for p in model.parameters() if p.requires_grad]
    started = time.perf_counter()
    for behaviour in behaviours:
        torch.autograd.grad(behaviour.surrogate(model), params)
    return time.perf_counter() - started


def stored_scoring(path, digest, model, behaviours) -> tuple[float, float]:
    """(total, load) seconds."""
    started = time.perf_counter()
    embeddings = load_embeddings(path, digest)
    loaded = time.perf_counter()
    score_by_gradients(embeddings, behaviours, model)
    return time.perf_counter() - started, loaded - started


def aa_floats(version, root, task) -> tuple[int, int]:
    """Floats held by ``aa`` while preparing (checkpoints, displacements, products, v)."""
    layout = ParamLayout.of(task.build_model())
    coefficients = all_coefficients(version, root, layout)
    disp = stage_displacements(version, root, layout)
    propagator = H0Propagator(version, root, layout, coefficients)
    flats = [propagator.run(k, disp.changes[k], disp.momenta[k])
             for k in range(len(version.stages))]
    held = sum(t.numel() for t in disp.theta + disp.changes + disp.momenta + flats)
    held += sum(t.numel() for t in propagator._products.values())
    held += sum(t.numel() for t in propagator._v_ref.values())
    held += sum(c.group_index.numel() + sum(v.numel() for v in c.table.values())
                for c in coefficients)
    return held, len(version.stages) * layout.total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plan = long_plan(scale=1)
        version = record_version(plan, root)
        task = plan.scenario.task()
        embeddings = get_estimator("aa").prepare(version, root, task)
        saved = save_embeddings(embeddings, root / "aa.safetensors")
        model = final_model(version, root, task).eval()
        behaviours, members = per_example(args.queries), family(args.queries)
        bares, storeds, families = [], [], []
        for _ in range(args.repeats):  # interleaved, best of N: a shared machine is noisy
            bares.append(bare_gradients(model, behaviours))
            storeds.append(stored_scoring(saved.path, saved.sha256, model, behaviours))
            families.append(stored_scoring(saved.path, saved.sha256, model, members))
        bare, (stored, load), (batched, _) = min(bares), min(storeds), min(families)
        held, kp = aa_floats(version, root, task)
    params = sum(p.numel() for p in model.parameters())
    print(f"model P={params}, K={len(version.stages)}, Q={args.queries} behaviours")
    print(f"bare autograd.grad of Q behaviours : {bare * 1e3:8.1f} ms")
    print(f"score from stored embeddings       : {stored * 1e3:8.1f} ms  "
          f"(ratio {stored / bare:.2f}, target ≤ 1.3; of which load + sha256 check "
          f"{load * 1e3:.1f} ms)")
    print(f"score as one ProbeFamily           : {batched * 1e3:8.1f} ms  "
          f"(ratio {batched / bare:.2f}: K forward-mode passes over the Q examples)")
    print(f"aa floats held while preparing     : {held} = {held / kp:.2f} × K·P  (O(K·P))")


if __name__ == "__main__":
    main()
