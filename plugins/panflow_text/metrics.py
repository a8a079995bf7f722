"""Text metrics: judge perplexity under the autoregressive baseline, unigram entropy, n-gram
Jensen–Shannon divergence from held-out text, infilling accuracy on held-out spans."""

from __future__ import annotations

import math
from collections import Counter

import torch

from panflow import AutoregressiveObjective, MaskedObjective, SampleOptions, Samples, autoregressive_nll


def judge_perplexity(judge: torch.nn.Module, tokens: torch.Tensor, vocab_size: int) -> float:
    """exp(mean NLL per token) of ``tokens [N, L]`` under the causal ``judge``."""
    return math.exp(autoregressive_nll(judge, Samples(tokens), vocab_size))


def unigram_entropy(tokens: torch.Tensor) -> float:
    """Entropy (bits) of the token frequency distribution."""
    counts = torch.bincount(tokens.flatten()).double()
    p = counts[counts > 0] / counts.sum()
    return abs(float((p * p.log2()).sum()))  # abs: a constant sequence gives 0.0, not -0.0


def _ngrams(tokens: torch.Tensor, n: int) -> Counter:
    c: Counter = Counter()
    for row in tokens.tolist():
        c.update(tuple(row[i:i + n]) for i in range(len(row) - n + 1))
    return c


def ngram_jsd(a: torch.Tensor, b: torch.Tensor, n: int = 2) -> float:
    """Jensen–Shannon divergence (bits, in [0, 1]) between the n-gram distributions of two token sets."""
    ca, cb = _ngrams(a, n), _ngrams(b, n)
    ta, tb = sum(ca.values()), sum(cb.values())
    jsd = 0.0
    for k in set(ca) | set(cb):
        p, q = ca.get(k, 0) / ta, cb.get(k, 0) / tb
        m = 0.5 * (p + q)
        if p:
            jsd += 0.5 * p * math.log2(p / m)
        if q:
            jsd += 0.5 * q * math.log2(q / m)
    return jsd


def unigram_metrics(real: Samples, gen: Samples, seed: int = 0) -> dict[str, float]:
    """The registered metric: unigram entropy of ``gen`` and its 2-gram JSD from ``real``."""
    return {"unigram_entropy": unigram_entropy(gen.x), "jsd_2gram": ngram_jsd(gen.x, real.x, 2)}


def infill_mask(n: int, length: int, span: int) -> torch.Tensor:
    """``[n, length]`` bool, True where tokens are kept: a centred span of ``span`` tokens is hidden."""
    keep = torch.ones(n, length, dtype=torch.bool)
    start = (length - span) // 2
    keep[:, start:start + span] = False
    return keep


@torch.no_grad()
def diffusion_infill_accuracy(model, obj: MaskedObjective, val: torch.Tensor, span: int, nfe: int,
                              seed: int = 0, solver: str = "confidence") -> float:
    """Fraction of hidden tokens the masked-diffusion model restores exactly from both-side context."""
    keep = infill_mask(val.shape[0], val.shape[1], span)
    g = torch.Generator().manual_seed(seed)
    res = obj.generate(model, tuple(val.shape), SampleOptions(solver, nfe=nfe), generator=g, known=keep, x_known=val)
    hidden = ~keep
    return float((res.x[hidden] == val[hidden]).double().mean())


@torch.no_grad()
def autoregressive_fill_accuracy(judge, vocab_size: int, val: torch.Tensor, span: int, seed: int = 0) -> float:
    """The causal baseline's accuracy on the same spans from left context only (it cannot see the right)."""
    start = (val.shape[1] - span) // 2
    obj = AutoregressiveObjective(vocab_size)
    res = obj.generate(judge, (val.shape[0], start + span), generator=torch.Generator().manual_seed(seed),
                       prefix=val[:, :start])
    return float((res.x[:, start:] == val[:, start:start + span]).double().mean())
