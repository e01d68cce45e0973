"""Behaviours of language models, in generation terms.

Prompts and texts are long tensors of token ids, one row each, all rows the same length (pad or
generate them so). ``model(ids)`` may return a tensor, a ``ModelOutput``, a dict or a tuple: the
logits (batch, length, vocabulary) are read by ``auditor.outputs.logits_of`` unless ``logits=``
says otherwise. As everywhere, values are measured in eval mode.

- ``continuation_probability``: how likely the model is to continue each prompt with a given
  token sequence (a planted trigger → bad-continuation habit). Metric: the mean probability of
  the whole continuation; surrogate: the mean probability of each of its tokens (teacher-forced).
- ``greedy_completion_rate``: the share of prompts whose greedy completion starts with the given
  continuation. Surrogate: as above (the rate itself has no gradient).
- ``perplexity``: clean-text perplexity. Metric: exp of the mean token negative log-likelihood;
  surrogate: one minus the mean probability of the actual next token. A harm by default.

Surrogates are probabilities (between 0 and 1), like the classifier behaviours' error-rate
scale, so that a policy's thresholds mean the same on both; log-probabilities would make every
small shift of a rare token look material.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from auditor.behaviours.base import Behaviour, Direction
from auditor.behaviours.library import _from_joint, probe_digest
from auditor.outputs import LogitsFn, forward_logits


def _checked(name: str, prompts: torch.Tensor, continuation: torch.Tensor | None = None) -> None:
    if prompts.dim() != 2 or prompts.dtype != torch.long or prompts.shape[0] == 0:
        raise ValueError(f"behaviour {name!r}: prompts must be a non-empty (n, length) long "
                         "tensor of token ids")
    if continuation is not None and (continuation.dim() != 1 or len(continuation) == 0):
        raise ValueError(f"behaviour {name!r}: the continuation must be a 1-d tensor of ids")


def token_logprobs(model: torch.nn.Module, prompts: torch.Tensor, continuation: torch.Tensor,
                   logits: LogitsFn | None = None) -> torch.Tensor:
    """(prompts, continuation tokens) log-probabilities of each continuation token after each
    prompt (teacher-forced), differentiable."""
    n, length = prompts.shape
    tail = continuation.to(prompts.device).unsqueeze(0).expand(n, -1)
    scores = forward_logits(model, torch.cat([prompts, tail], dim=1), logits)
    steps = scores[:, length - 1:length - 1 + tail.shape[1]].float().log_softmax(-1)
    return steps.gather(-1, tail.unsqueeze(-1)).squeeze(-1)


def greedy_continuations(model: torch.nn.Module, prompts: torch.Tensor, tokens: int,
                         logits: LogitsFn | None = None) -> torch.Tensor:
    """The next ``tokens`` ids of each prompt under greedy decoding (no sampling)."""
    ids = prompts
    with torch.no_grad():
        for _ in range(tokens):
            step = forward_logits(model, ids, logits)[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, step], dim=1)
    return ids[:, prompts.shape[1]:]


def continuation_probability(name: str, prompts: torch.Tensor, continuation: torch.Tensor, *,
                             direction: Direction = "harm", description: str = "",
                             logits: LogitsFn | None = None) -> Behaviour:
    _checked(name, prompts, continuation)

    def joint(model):
        logp = token_logprobs(model, prompts, continuation, logits)
        return logp.exp().mean(), float(logp.detach().sum(-1).exp().mean())

    return _from_joint(
        joint, name=name, direction=direction, metric_name="mean continuation probability",
        probe_digest=probe_digest(prompts, continuation), probe_size=len(prompts),
        description=description or f"probability of a given continuation after {len(prompts)} "
                                   "prompts")


def greedy_completion_rate(name: str, prompts: torch.Tensor, continuation: torch.Tensor, *,
                           direction: Direction = "harm", description: str = "",
                           logits: LogitsFn | None = None) -> Behaviour:
    _checked(name, prompts, continuation)

    def joint(model):
        surrogate = token_logprobs(model, prompts, continuation, logits).exp().mean()
        completions = greedy_continuations(model, prompts, len(continuation), logits)
        hits = (completions == continuation.to(completions.device)).all(-1)
        return surrogate, float(hits.float().mean())

    return _from_joint(
        joint, name=name, direction=direction, metric_name="rate of greedy completions",
        probe_digest=probe_digest(prompts, continuation), probe_size=len(prompts),
        description=description or f"share of {len(prompts)} prompts completed greedily with "
                                   "a given continuation")


def perplexity(name: str, texts: torch.Tensor, *, direction: Direction = "harm",
               description: str = "", logits: LogitsFn | None = None) -> Behaviour:
    _checked(name, texts)

    def joint(model):
        scores = forward_logits(model, texts, logits)[:, :-1].float()
        logp = -F.cross_entropy(scores.reshape(-1, scores.shape[-1]), texts[:, 1:].reshape(-1),
                                reduction="none")
        nll = -float(logp.detach().mean())
        return 1.0 - logp.exp().mean(), math.exp(min(nll, 50.0))

    return _from_joint(joint, name=name, direction=direction, metric_name="perplexity",
                       probe_digest=probe_digest(texts), probe_size=len(texts),
                       description=description or f"perplexity on {len(texts)} clean texts")
