"""Image metrics on the reference classifier's z-scored features: FD (and the floor's spread),
KID, precision/recall, conditional accuracy; memorisation in pixel space."""

from __future__ import annotations

import torch

from panflow import Samples, frechet_distance, kernel_inception_distance, memorisation_rate, precision_recall

from .classifier import ReferenceCNN, features, predict


def paired_halves(y: torch.Tensor, n: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint index sets ``[N]`` of ``y`` ``[M]`` with the same class at every position: each
    class's images are paired at random, the pairs shuffled and the first N kept (N <= pairs)."""
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        pairs.append(idx[: len(idx) // 2 * 2].reshape(-1, 2))
    p = torch.cat(pairs)
    p = p[torch.randperm(len(p), generator=g)][:n]
    return p[:, 0], p[:, 1]


def floor_interval(fv: torch.Tensor, y: torch.Tensor, n: int, reps: int = 200, level: float = 0.95,
                   seed: int = 0) -> tuple[float, float]:
    """The spread of the floor: FD between two disjoint class-matched halves of N rows of the real
    held-out features ``fv`` ``[M, D]`` (labels ``y`` ``[M]``), re-split ``reps`` times; returns the
    central ``level`` interval.

    A re-split, not a with-replacement bootstrap: duplicated rows shrink the covariance estimates
    and push a bootstrapped FD far above the estimate it should bracket."""
    vals = []
    for r in range(reps):
        a, b = paired_halves(y, n, seed=seed + 1 + r)
        vals.append(frechet_distance(fv[a], fv[b]))
    q = torch.quantile(torch.tensor(vals, dtype=torch.float64),
                       torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return float(q[0]), float(q[1])


def feature_metrics(net: ReferenceCNN, real: torch.Tensor, fake: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """FD, KID (± sd over subsets), precision, recall of ``fake`` against ``real`` (``[N, C, H, W]``)."""
    fr, ff = features(net, real), features(net, fake)  # z-scored with the training split's statistics
    kid, kid_sd = kernel_inception_distance(fr, ff, subsets=20, subset_size=min(200, len(fr), len(ff)), seed=seed)
    prec, rec = precision_recall(fr, ff, k=3)
    return {"fd": frechet_distance(fr, ff), "kid": kid, "kid_sd": kid_sd, "precision": prec, "recall": rec}


def conditional_accuracy(net: ReferenceCNN, samples: Samples) -> float:
    """Fraction of images the reference classifier assigns to the class they carry (drawn for)."""
    if samples.y is None:
        raise ValueError("conditional accuracy needs the labels the samples were drawn for")
    return float((predict(net, samples.x) == samples.y).double().mean())


def pixel_memorisation(samples: torch.Tensor, train: torch.Tensor) -> float:
    return memorisation_rate(samples.flatten(1), train.flatten(1), ratio=1 / 3)


def pixel_fd(real: Samples, gen: Samples, seed: int = 0) -> dict[str, float]:
    """Fréchet distance in raw pixel space (a registered metric usable without a classifier)."""
    return {"pixel_fd": frechet_distance(real.x.flatten(1), gen.x.flatten(1))}
