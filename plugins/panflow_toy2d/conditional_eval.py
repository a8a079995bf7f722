"""Metrics for the conditional toys, shared by ``panflow eval`` and the benchmark.

- ring: joint W2 of ``(c, x)`` pairs against exact draws given the same contexts (a model that
  ignores ``c`` scores badly here even though its marginal is right), conditional NLL
  ``−log q(x | c)`` through the flow against the exact conditional entropy, and the spread of
  ``x | c`` under guidance.
- gauss2: ``b | a`` from the trained known-part way and from training-free replacement, as
  z-scores of the mean and variance against the analytic conditional.
"""

from __future__ import annotations

import math

import torch

from panflow import FlowObjective, SampleOptions, log_likelihood

from .conditional import ConditionalRing, CorrelatedGaussian
from .metrics import wasserstein2


def joint_w2(c: torch.Tensor, x: torch.Tensor, x_ref: torch.Tensor) -> float:
    """W2 between ``(c, x)`` and ``(c, x_ref)`` point clouds (4-D, exact EMD)."""
    return wasserstein2(torch.cat([c, x], 1), torch.cat([c, x_ref], 1))


def ring_floor(toy: ConditionalRing, c: torch.Tensor, x_val: torch.Tensor, seed: int) -> dict[str, float]:
    x_ref = toy.sample(c, torch.Generator().manual_seed(30_000 + seed))
    return {"cond_w2": joint_w2(c, x_val, x_ref), "cond_nll": float(-toy.log_prob(x_val, c).mean()),
            "spread": _spread(toy, c, x_ref)}


def ring_baseline(toy: ConditionalRing, train_x: torch.Tensor, c: torch.Tensor, x_val: torch.Tensor,
                  seed: int) -> dict[str, float]:
    """The naive model: one Gaussian fitted to x, ignoring the context."""
    mu, cov = train_x.double().mean(0), torch.cov(train_x.double().T)
    dist = torch.distributions.MultivariateNormal(mu, covariance_matrix=cov)
    torch.manual_seed(seed)
    xb = dist.sample((len(c),)).float()
    return {"cond_w2": joint_w2(c, xb, x_val), "cond_nll": float(-dist.log_prob(x_val.double()).mean()),
            "spread": _spread(toy, c, xb)}


def ring_model(model, obj: FlowObjective, toy: ConditionalRing, c: torch.Tensor, x_val: torch.Tensor,
               opts: SampleOptions, seed: int, n_nll: int) -> dict[str, float]:
    res = obj.generate(model, tuple(x_val.shape), opts, cond={"c": c}, generator=torch.Generator().manual_seed(seed))
    field = obj.field(model, {"c": c[:n_nll]}, SampleOptions(), batch=n_nll)
    logq = log_likelihood(field, x_val[:n_nll], method="dopri5", atol=1e-5, rtol=1e-5)
    return {"cond_w2": joint_w2(c, res.x, x_val), "cond_nll": float(-logq.double().mean()),
            "spread": _spread(toy, c, res.x), "nfe": res.nfe}


def _spread(toy: ConditionalRing, c: torch.Tensor, x: torch.Tensor) -> float:
    """RMS distance of x from its context's centre, relative to the exact value s·√2."""
    d = (x.double() - toy.radius * c.double()).pow(2).sum(1).mean().sqrt()
    return float(d / (toy.scale * math.sqrt(2)))


def inpaint_zscores(model, obj: FlowObjective, a: float, n: int, opts: SampleOptions, seed: int) -> dict[str, float]:
    """Sample ``b | a`` (``opts.inpaint``: trained or replacement); z-scores of its mean and variance."""
    toy = CorrelatedGaussian()
    known = torch.zeros(n, 2, dtype=torch.bool)
    known[:, 0] = True
    x_known = torch.zeros(n, 2)
    x_known[:, 0] = a
    res = obj.generate(model, (n, 2), opts, known=known, x_known=x_known, generator=torch.Generator().manual_seed(seed))
    b = res.x[:, 1].double()
    mean, var = toy.conditional(a)
    return {"a": a, "mean": float(b.mean()), "var": float(b.var()), "true_mean": mean, "true_var": var,
            "z_mean": (float(b.mean()) - mean) / math.sqrt(var / n),
            "z_var": (float(b.var()) - var) / (var * math.sqrt(2 / (n - 1))),
            "nfe": res.nfe, "held_exactly": bool(torch.equal(res.x[:, 0], x_known[:, 0]))}
