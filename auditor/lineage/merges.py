"""Adapters merged into their base weight when a stage starts (docs/maths.md#merged-adapters).

peft's ``merge_and_unload()`` (or ``merge_adapter()``) computes W' = W + s·B·A in place (its
transpose for ``fan_in_fan_out`` layers), s = lora_alpha / r. The Recorder declares W' with
``recomputes=``; it then *recognises* the merge from the values it holds — the previous stage's
end (W, A, B) and the new W' — and records it (``LoraMerge``), or refuses the stage in one line
naming the tensor. The estimators carry a tangent δ through the merge by the exact difference

    M(θ) − M(θ − δ) = δW + s·(δB·A + (B − δB)·δA)      (A, B at the previous stage's end),

the first-order map dW + s(dB·A + B·dA) plus the bilinear term, which makes the adapter stage's
own effect exactly the merged delta it leaves behind.

* ``lora_scalings``: peft's s and ``fan_in_fan_out`` of every LoRA layer (kept at a stage's end);
* ``describe_merge``: the merge that computed a recomputed tensor, or a one-line LineageError;
* ``merge_difference``: the difference above for a merged weight (or a range of its rows);
* ``flat_merges``/``through_merges``: applied to a flat tangent in the union layout, or to a
  stage's displacement by names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch

from auditor.errors import LineageError
from auditor.lineage.models import LoraMerge, ModelVersion, ParameterChange

Scalings = dict[str, tuple[float, bool]]  # A factor's name -> (s, fan_in_fan_out)


def lora_scalings(model: torch.nn.Module) -> Scalings:
    """peft's scaling and ``fan_in_fan_out`` of every LoRA layer, by its A factor's name."""
    found: Scalings = {}
    for prefix, module in model.named_modules():
        scaling, factors = getattr(module, "scaling", None), getattr(module, "lora_A", None)
        if not isinstance(scaling, dict) or not isinstance(factors, torch.nn.ModuleDict):
            continue
        transpose = bool(getattr(module, "fan_in_fan_out", False))
        for adapter, scale in scaling.items():
            if adapter in factors and isinstance(scale, (int, float)):
                found[f"{prefix}.lora_A.{adapter}.weight".lstrip(".")] = (float(scale), transpose)
    return found


def _fit(w, a, b, new, scale: float | None, transpose: bool) -> float | None:
    """s such that new = w + s·(b·a) (transposed) to rounding, or None."""
    product = b.double() @ a.double()
    if transpose:
        product = product.T
    if product.shape != w.shape:
        return None
    delta = new.double() - w.double()
    if scale is None:
        norm = float((product * product).sum())
        if norm == 0.0:
            return None
        scale = float((delta * product).sum()) / norm
    eps = max(torch.finfo(t.dtype).eps for t in (w, a, b, new))
    bound = (b.double().abs() @ a.double().abs()).max() if product.numel() else 0.0
    tol = 8 * eps * (float(new.double().abs().max()) + (a.shape[0] + 2) * abs(scale) * float(bound))
    residual = float((delta - scale * product).abs().max()) if delta.numel() else 0.0
    return scale if residual <= tol + 1e-300 else None


def describe_merge(before: Mapping[str, torch.Tensor], base: str, weight: str,
                   after: torch.Tensor, where: str, scalings: Scalings | None = None
                   ) -> LoraMerge:
    """How ``after`` (tensor ``weight`` of the new stage, ``base`` before) was computed from the
    previous end ``before``: a LoRA merge W + s·B·A of ``base``'s layer, its factors named as
    peft names them (``….lora_A.<adapter>.weight``). s is peft's (``scalings``) when the layer
    was a peft layer, else fitted by least squares; either way W' must be reproduced to
    rounding. A one-line LineageError naming ``weight`` otherwise."""
    refuse = (f"{where}: tensor {weight!r} was recomputed, but not as a LoRA merge W + s·B·A "
              "that the estimators can carry")
    layer = base.removesuffix("weight")
    if layer == base:
        raise LineageError(f"{refuse} (it is not a weight)")
    layer = layer.removesuffix("base_layer.")
    pattern = re.compile(re.escape(layer) + r"lora_A\.([^.]+)\.weight")
    pairs = [(n, f"{layer}lora_B.{m.group(1)}.weight") for n in before
             if (m := pattern.fullmatch(n))]
    pairs = [(a, b) for a, b in pairs if b in before]
    if len(pairs) != 1:
        raise LineageError(f"{refuse} ({len(pairs)} adapter pairs {layer}lora_A/lora_B in the "
                           "previous stage; one is needed)")
    a, b = pairs[0]
    w, fa, fb = before[base], before[a], before[b]
    if w.dim() != 2 or fa.dim() != 2 or fb.dim() != 2 or after.shape != w.shape:
        raise LineageError(f"{refuse} (not a 2-D weight with 2-D factors)")
    known = (scalings or {}).get(a)
    orientations = [known[1]] if known else [False, True]
    for transpose in orientations:
        scale = _fit(w, fa, fb, after, known[0] if known else None, transpose)
        if scale is not None:
            return LoraMerge(weight=weight, base=base, a=a, b=b, scale=scale,
                             transpose=transpose)
    raise LineageError(f"{refuse} (W' − W is not s·B·A of {a!r} and {b!r} to rounding)")


def check_merge(merge: LoraMerge, before: Mapping[str, torch.Tensor], after: torch.Tensor,
                where: str) -> None:
    """A recorded merge reproduces the start checkpoint's tensor (a lineage from disk)."""
    names = (merge.base, merge.a, merge.b)
    missing = [n for n in names if n not in before]
    if missing:
        raise LineageError(f"{where}: the merge into {merge.weight!r} names {missing[0]!r}, "
                           "which the previous end checkpoint lacks")
    w, a, b = (before[n] for n in names)
    if a.dim() != 2 or b.dim() != 2 or _fit(w, a, b, after, merge.scale,
                                            merge.transpose) is None:
        raise LineageError(f"{where}: tensor {merge.weight!r} is not the recorded merge "
                           f"W + {merge.scale:g}·B·A of the previous stage's end")


def merge_difference(merge: LoraMerge, a: torch.Tensor, b: torch.Tensor,
                     da: torch.Tensor | None, db: torch.Tensor | None,
                     rows: slice | None = None) -> torch.Tensor | None:
    """M(θ) − M(θ − δ) − δW for the merged weight (``rows`` of it): s·(δB·A + (B − δB)·δA),
    A, B the factors' values at the previous stage's end, δA, δB their tangents (None: zero).
    None when both tangents are None."""
    if da is None and db is None:
        return None
    if rows is not None:
        if merge.transpose:  # rows of (B·A)ᵀ are columns of A
            a, da = a[:, rows], (None if da is None else da[:, rows])
        else:
            b, db = b[rows], (None if db is None else db[rows])
    out = None
    if db is not None:
        out = db @ a
        b = b - db
    if da is not None:
        out = b @ da if out is None else out + b @ da
    out = merge.scale * out
    return out.T if merge.transpose else out


def flat_merges(merges: list[LoraMerge], offsets: dict[str, slice],
                values: Mapping[str, torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """The merges' map on a flat tangent whose blocks ``offsets`` places (the previous stage's
    names; the merged weight keeps its block): δ[W] += the difference above."""
    factors = [(m, values[m.a].to(torch.float64), values[m.b].to(torch.float64))
               for m in merges]

    def apply(flat: torch.Tensor) -> torch.Tensor:
        flat = flat.clone()
        for merge, a, b in factors:
            da = flat[offsets[merge.a]].view(a.shape).to(a.dtype)
            db = flat[offsets[merge.b]].view(b.shape).to(b.dtype)
            diff = merge_difference(merge, a, b, da, db)
            flat[offsets[merge.base]] += diff.reshape(-1).to(flat.dtype)
        return flat

    return apply


def through_merges(version: ModelVersion, k: int, vector: dict[str, torch.Tensor],
                   values: Callable[[int], Mapping[str, torch.Tensor]]) -> dict:
    """Stage k's displacement (stage k's names) under the last stage's names: renamed, dropped
    where removed, and carried through every later merge (``values(i)``: stage i's end
    tensors). A lineage without merges gets ``ModelVersion.final_name``'s names."""
    named = dict(vector)
    for i in range(k + 1, len(version.stages)):
        change: ParameterChange | None = version.stages[i].changes
        if change is None:
            continue
        if any(m.a in named or m.b in named for m in change.merges):
            ends = values(i - 1)
            for merge in change.merges:
                da, db = named.get(merge.a), named.get(merge.b)
                a = ends[merge.a].to(_dtype(da, db))
                b = ends[merge.b].to(a.dtype)
                diff = merge_difference(merge, a, b, da, db)
                if diff is not None:
                    own = named.get(merge.base)
                    named[merge.base] = diff if own is None else own + diff.to(own.dtype)
        named = {change.renamed.get(n, n): t for n, t in named.items()
                 if n not in change.removed}
    return named


def _dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    return next((t.dtype for t in tensors if t is not None), torch.float64)
