"""toy2d metrics: exact W2 (EMD), NLL through the flow, KL to the true density, mode coverage."""

from __future__ import annotations

import math

import numpy as np
import ot
import torch

from .data import Toy2D


def wasserstein2(a: torch.Tensor, b: torch.Tensor) -> float:
    """Exact 2-Wasserstein distance between two equal-weight point clouds (network simplex)."""
    a64, b64 = a.detach().double().cpu().numpy(), b.detach().double().cpu().numpy()
    cost = ot.dist(a64, b64)  # squared Euclidean
    w2sq = ot.emd2(np.empty(0), np.empty(0), cost, numItermax=100_000_000)
    return float(math.sqrt(max(w2sq, 0.0)))


def mode_coverage(toy: Toy2D, x: torch.Tensor, min_share: float = 0.5) -> dict[str, float]:
    """``coverage``: fraction of modes holding ≥ ``min_share`` of their expected mass;
    ``in_mode``: fraction of samples that land on some mode."""
    mode = toy.mode_of(x)
    n = x.shape[0]
    counts = torch.bincount(mode[mode >= 0], minlength=toy.num_modes).double()
    expected = toy.mode_weights() * n
    return {"coverage": float((counts >= min_share * expected).double().mean()),
            "in_mode": float((mode >= 0).double().mean())}


def kl_to_truth(toy: Toy2D, x_true: torch.Tensor, model_logp: torch.Tensor) -> float:
    """KL(p ‖ q) ≈ mean over true samples of log p(x) − log q(x) (nats)."""
    return float((toy.log_prob(x_true) - model_logp.double()).mean())
