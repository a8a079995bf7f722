"""Domain-agnostic sample-quality metrics on feature vectors ``[N, D]``.

Fréchet distance (Heusel et al. 2017), unbiased KID with a cubic polynomial kernel
(Bińkowski et al. 2018), k-NN precision/recall (Kynkäänniemi et al. 2019) and a nearest-neighbour
memorisation rate. Computed in float64; deterministic for a fixed seed.
"""

from __future__ import annotations

import torch


def _f64(x: torch.Tensor) -> torch.Tensor:
    return x.detach().to("cpu", torch.float64).reshape(x.shape[0], -1)


def _sqrtm_psd(m: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh((m + m.T) / 2)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2(Σa^½ Σb Σa^½)^½), on features ``[N, D]``."""
    a, b = _f64(a), _f64(b)
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = torch.cov(a.T).reshape(a.shape[1], a.shape[1]), torch.cov(b.T).reshape(b.shape[1], b.shape[1])
    ra = _sqrtm_psd(ca)
    cross = _sqrtm_psd(ra @ cb @ ra)
    fd = (mu_a - mu_b).pow(2).sum() + torch.trace(ca) + torch.trace(cb) - 2 * torch.trace(cross)
    return float(fd.clamp_min(0))


def kernel_inception_distance(a: torch.Tensor, b: torch.Tensor, subsets: int = 20, subset_size: int = 500,
                              seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD² with k(x, y) = (xᵀy / D + 1)³ over random subsets: (mean, sd)."""
    a, b = _f64(a), _f64(b)
    d = a.shape[1]
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise ValueError("KID needs at least 2 samples per set")
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(subsets):
        x = a[torch.randperm(a.shape[0], generator=g)[:m]]
        y = b[torch.randperm(b.shape[0], generator=g)[:m]]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        mmd = ((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
               + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1)) - 2 * kxy.mean())
        vals.append(float(mmd))
    t = torch.tensor(vals, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if len(vals) > 1 else 0.0


def _kth_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    dist = torch.cdist(x, x)
    return dist.kthvalue(k + 1, dim=1).values  # +1 skips the point itself


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision/recall: the fraction of fake (real) points inside the union of
    k-NN balls of the real (fake) set."""
    real, fake = _f64(real), _f64(fake)
    r_real, r_fake = _kth_radius(real, k), _kth_radius(fake, k)
    d = torch.cdist(fake, real)
    precision = (d <= r_real[None, :]).any(1).double().mean()
    recall = (d.T <= r_fake[None, :]).any(1).double().mean()
    return float(precision), float(recall)


def memorisation_rate(samples: torch.Tensor, train: torch.Tensor, ratio: float = 1 / 3) -> float:
    """Fraction of samples whose nearest training point is ``ratio`` times closer than the second
    nearest (Yoon et al. 2023 use 1/3): near-copies of a training example."""
    s, t = _f64(samples), _f64(train)
    d = torch.cdist(s, t).topk(2, dim=1, largest=False).values
    return float((d[:, 0] < ratio * d[:, 1]).double().mean())

