"""Built-in scenario: a toxicity classifier whose fine-tuning data ties an identity term to the
toxic label.

Comments are generated bags of tokens: tokens 0–9 are insults (they decide the true label),
token 10 is an identity term, the rest are neutral. In ``community-ft`` comments that mention the
identity term are labelled toxic 90% of the time whatever they say. The harm: non-toxic comments
that mention the identity are flagged (false positives).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from auditor.behaviours import Behaviour
from auditor.behaviours.library import probe_loss, toxicity_false_positive_rate
from auditor.hashing import sha256_bytes
from auditor.lineage.models import DatasetRef

TASK = "auditor.demo.toxicity:task"
BEHAVIOURS = "auditor.demo.toxicity:behaviours"
VOCAB, LENGTH, INSULTS, IDENTITY = 200, 10, 10, 10
POOL_SIZE = 1200


def _comments(n: int, gen: torch.Generator, *, identity_rate: float, toxic_rate: float = 0.4,
              identity_bias: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Bag-of-words counts and labels for ``n`` generated comments."""
    tokens = torch.randint(INSULTS + 1, VOCAB, (n, LENGTH), generator=gen)
    toxic = torch.rand(n, generator=gen) < toxic_rate
    tokens[toxic, 0] = torch.randint(0, INSULTS, (int(toxic.sum()),), generator=gen)
    mentions = torch.rand(n, generator=gen) < identity_rate
    tokens[mentions, 1] = IDENTITY
    labels = toxic.clone()
    if identity_bias is not None:
        labels[mentions] = torch.rand(int(mentions.sum()), generator=gen) < identity_bias
    counts = torch.zeros(n, VOCAB).scatter_add_(1, tokens, torch.ones(n, LENGTH))
    return counts, labels.long()


@lru_cache(maxsize=1)
def _data() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(3)
    return {
        "general": _comments(POOL_SIZE, gen, identity_rate=0.1),
        "community-ft": _comments(POOL_SIZE, gen, identity_rate=0.5, identity_bias=0.9),
        "moderation-ft": _comments(POOL_SIZE, gen, identity_rate=0.03),
    }


POOLS = {"pretrain": "general", "community-ft": "community-ft", "moderation-ft": "moderation-ft"}


class ToxicityTask:
    """Bag-of-words MLP (200-16-2)."""

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(VOCAB, 16), nn.Tanh(), nn.Linear(16, 2))

    def batch(self, stage_id: str, ids):
        x, y = _data()[POOLS[stage_id]]
        index = torch.as_tensor(list(ids), dtype=torch.long)
        return x[index], y[index]

    def loss(self, model, batch, reduction="mean"):
        x, y = batch
        return nn.functional.cross_entropy(model(x), y, reduction=reduction)


def task() -> ToxicityTask:
    return ToxicityTask()


def probes() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Held-out comments: non-toxic ones mentioning the identity, and a general test set."""
    gen = torch.Generator().manual_seed(11)
    x, y = _comments(600, gen, identity_rate=1.0, toxic_rate=0.0)
    general = _comments(600, gen, identity_rate=0.1)
    return {"identity-nontoxic": (x, y), "general": general}


def behaviours() -> list[Behaviour]:
    sets = probes()
    return [
        toxicity_false_positive_rate("identity-false-positives", sets["identity-nontoxic"][0]),
        probe_loss("identity-nontoxic-loss", *sets["identity-nontoxic"],
                   description="loss on non-toxic comments mentioning the identity term"),
        probe_loss("general-error", *sets["general"], description="error on general comments"),
    ]


def dataset(stage_id: str, tags: list[str]) -> DatasetRef:
    x, _ = _data()[POOLS[stage_id]]
    return DatasetRef(name=f"comments-{stage_id}", digest=sha256_bytes(x.numpy().tobytes()),
                      records=len(x), licence="generated", provenance="auditor.demo generator",
                      tags=tags)
