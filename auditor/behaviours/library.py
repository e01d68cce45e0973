"""Ready-made behaviours for classifiers: each pairs a differentiable surrogate with the metric
people read. Probe sets are tensors; their sha256 goes into the report as ``probe_digest``.

Models may return class logits as a tensor, a ``ModelOutput``, a dict or a tuple: the logits are
taken by ``auditor.outputs.logits_of`` (the tensor, the ``logits`` entry, or the first element);
every behaviour takes ``logits=`` (a function of the model's output) to read them elsewhere.
Mapping inputs (a tokenizer's ``input_ids`` and ``attention_mask``) are passed as keyword
arguments. Language-model behaviours are in ``auditor.behaviours.language``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from torch.nn import functional as F

from auditor.behaviours.base import Behaviour, Direction, ProbeFamily
from auditor.errors import InputError
from auditor.hashing import sha256_bytes
from auditor.outputs import LogitsFn, forward_logits, logits_of
from auditor.task import load_entry_point


def probe_digest(*tensors: torch.Tensor) -> str:
    blob = b"".join(t.detach().cpu().contiguous().numpy().tobytes() for t in tensors)
    return sha256_bytes(blob)


def _errors(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return float((logits.detach().argmax(-1) != targets).float().mean())


def _from_joint(joint: Callable[[torch.nn.Module], tuple[torch.Tensor, float]],
                **fields) -> Behaviour:
    """A behaviour whose surrogate and metric are both read off one forward pass."""
    return Behaviour(surrogate=lambda model: joint(model)[0],
                     metric=lambda model: joint(model)[1], joint=joint, **fields)


def probe_loss(name: str, inputs: torch.Tensor, targets: torch.Tensor, *,
               direction: Direction = "harm", description: str = "",
               logits: LogitsFn | None = None) -> Behaviour:
    """Mean cross-entropy on a probe set; the reported metric is its error rate."""
    read = logits

    def joint(model):
        logits = forward_logits(model, inputs, read)
        return F.cross_entropy(logits, targets), _errors(logits, targets)

    return _from_joint(
        joint, name=name, direction=direction, metric_name="error rate",
        description=description or f"mean loss on {len(targets)} probe examples",
        probe_digest=probe_digest(inputs, targets), probe_size=len(targets))


def example_losses(prefix: str, inputs: torch.Tensor, targets: torch.Tensor, *,
                   logits: LogitsFn | None = None) -> list[Behaviour]:
    """One behaviour per probe example (its loss, metric: misclassified or not), all members of
    one ProbeFamily so the estimators score them in batched passes."""
    read = logits or logits_of
    family = ProbeFamily(
        inputs=inputs,
        per_example=lambda out, i: F.cross_entropy(read(out), targets[i], reduction="none"),
        metrics=lambda out, i: (read(out).argmax(-1) != targets[i]).to(read(out).dtype))
    return [replace(probe_loss(f"{prefix}[{i}]", inputs[i:i + 1], targets[i:i + 1],
                               description=f"loss of probe example {i}", logits=logits),
                    family=family, member=i) for i in range(len(targets))]


def group_gap(name: str, reference: tuple[torch.Tensor, torch.Tensor],
              group: tuple[torch.Tensor, torch.Tensor], *, description: str = "",
              logits: LogitsFn | None = None) -> Behaviour:
    """How much worse the model does on ``group`` than on ``reference`` (a spurious shortcut).

    Surrogate: loss(group) − loss(reference). Metric: accuracy(reference) − accuracy(group).
    """
    (x_ref, y_ref), (x_grp, y_grp) = reference, group

    def joint(model):
        grp, ref = forward_logits(model, x_grp, logits), forward_logits(model, x_ref, logits)
        return (F.cross_entropy(grp, y_grp) - F.cross_entropy(ref, y_ref),
                _errors(grp, y_grp) - _errors(ref, y_ref))

    return _from_joint(joint, name=name, direction="harm", metric_name="accuracy gap",
                       probe_digest=probe_digest(x_ref, y_ref, x_grp, y_grp),
                       probe_size=len(y_ref) + len(y_grp),
                       description=description or "accuracy gap between a reference and a group")


def harmful_output_rate(name: str, inputs: torch.Tensor, harmful_class: int, *,
                        threshold: float = 0.5, description: str = "",
                        logits: LogitsFn | None = None) -> Behaviour:
    """Share of probe inputs the model puts in ``harmful_class`` with probability > threshold.

    Surrogate: mean probability of the harmful class.
    """
    def joint(model):
        p = forward_logits(model, inputs, logits).softmax(-1)[:, harmful_class]
        return p.mean(), float((p.detach() > threshold).float().mean())

    return _from_joint(joint, name=name, direction="harm",
                       metric_name=f"rate of p(class {harmful_class}) > {threshold}",
                       probe_digest=probe_digest(inputs), probe_size=len(inputs),
                       description=description or f"harmful-output rate on {len(inputs)} probes")


def toxicity_false_positive_rate(name: str, nontoxic_identity_texts: torch.Tensor, *,
                                 toxic_class: int = 1, threshold: float = 0.5,
                                 logits: LogitsFn | None = None) -> Behaviour:
    """Rate of non-toxic texts that mention an identity term but are flagged toxic."""
    behaviour = harmful_output_rate(
        name, nontoxic_identity_texts, toxic_class, threshold=threshold, logits=logits,
        description="false-positive toxicity rate on non-toxic texts mentioning an identity term")
    return Behaviour(**{**behaviour.__dict__, "metric_name": "false-positive rate"})


def load_behaviours(spec: str) -> list[Behaviour]:
    """Custom behaviours: ``module:function`` returning a list of Behaviour."""
    behaviours = load_entry_point(spec)()
    if isinstance(behaviours, Behaviour):
        behaviours = [behaviours]
    if not isinstance(behaviours, list | tuple) or not all(
            isinstance(b, Behaviour) for b in behaviours):
        raise InputError(f"{spec!r} must return a list of auditor.behaviours.Behaviour")
    names = [b.name for b in behaviours]
    if len(set(names)) != len(names):
        raise InputError(f"{spec!r} returns duplicate behaviour names")
    return list(behaviours)
