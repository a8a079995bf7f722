"""Image metrics on the reference classifier's features: FD, KID, precision/recall,
conditional accuracy; memorisation in pixel space."""

from __future__ import annotations

import torch

from panflow import Samples, frechet_distance, kernel_inception_distance, memorisation_rate, precision_recall

from .classifier import ReferenceCNN, features


def feature_metrics(net: ReferenceCNN, real: torch.Tensor, fake: torch.Tensor, seed: int = 0) -> dict[str, float]:
    fr, ff = features(net, real), features(net, fake)
    # KID's cubic kernel assumes O(1) features: standardise both sets with the real set's statistics
    mu, sd = fr.mean(0), fr.std(0).clamp_min(1e-6)
    kid, kid_sd = kernel_inception_distance((fr - mu) / sd, (ff - mu) / sd, subsets=20,
                                            subset_size=min(200, len(fr), len(ff)), seed=seed)
    prec, rec = precision_recall(fr, ff, k=3)
    return {"fd": frechet_distance(fr, ff), "kid": kid, "kid_sd": kid_sd, "precision": prec, "recall": rec}


@torch.no_grad()
def conditional_accuracy(net: ReferenceCNN, samples: Samples) -> float:
    if samples.y is None:
        raise ValueError("conditional accuracy needs the labels the samples were drawn for")
    pred = torch.cat([net(samples.x[i:i + 512]).argmax(1) for i in range(0, len(samples), 512)])
    return float((pred == samples.y).double().mean())


def pixel_memorisation(samples: torch.Tensor, train: torch.Tensor) -> float:
    return memorisation_rate(samples.flatten(1), train.flatten(1), ratio=1 / 3)


def pixel_fd(real: Samples, gen: Samples, seed: int = 0) -> dict[str, float]:
    """Fréchet distance in raw pixel space (a registered metric usable without a classifier)."""
    return {"pixel_fd": frechet_distance(real.x.flatten(1), gen.x.flatten(1))}
