"""Video metrics: per-frame Fréchet distance, identity consistency, motion statistics against the
exact physics, prediction error per horizon and a clip-level Fréchet distance.

Clips are raw ``[N, T, C, H, W]`` in [0, 1]. The feature networks are in :mod:`.classifiers`.
"""

from __future__ import annotations

import numpy as np
import torch

from panflow import Samples, frechet_distance

from .classifiers import features, predict
from .moving import centroids


def frame_fd(net, a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between the frame classifier's features of every frame of ``a`` and ``b``."""
    return frechet_distance(features(net, a.flatten(0, 1)), features(net, b.flatten(0, 1)))


def clip_fd(net, a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between the 3-D clip classifier's features of clips ``a`` and ``b``."""
    return frechet_distance(features(net, a), features(net, b))


def identity(net, x: torch.Tensor) -> float:
    """Mean fraction of a clip's frames whose predicted digit is the clip's most frequent prediction."""
    n, t = x.shape[:2]
    lab = predict(net, x.flatten(0, 1)).reshape(n, t)
    mode = lab.mode(1).values
    return float((lab == mode[:, None]).double().mean())


def speeds(tracks: torch.Tensor) -> np.ndarray:
    """Per-step speeds (pixels per frame) of centroid tracks ``[N, T, 2]``: ``[N·(T−1)]``."""
    return (tracks[:, 1:] - tracks[:, :-1]).double().norm(dim=-1).flatten().numpy()


def bounce_rate(tracks: torch.Tensor, eps: float = 0.25) -> float:
    """Fraction of interior steps where a velocity component (larger than ``eps``) reverses sign."""
    v = (tracks[:, 1:] - tracks[:, :-1]).double()
    a, b = v[:, :-1], v[:, 1:]
    flip = ((a * b) < 0) & (a.abs() > eps) & (b.abs() > eps)
    return float(flip.any(-1).double().mean())


def wasserstein_1d(a: np.ndarray, b: np.ndarray, q: int = 512) -> float:
    """W1 between two 1-D samples (mean absolute difference of ``q`` matched quantiles)."""
    p = (np.arange(q) + 0.5) / q
    return float(np.abs(np.quantile(a, p) - np.quantile(b, p)).mean())


def motion(x: torch.Tensor, exact: torch.Tensor) -> dict[str, float]:
    """Centroid-speed statistics of clips ``x`` against exact centroid tracks ``exact [M, T, 2]``."""
    s, e = speeds(centroids(x)), speeds(exact)
    return {"speed_w1": wasserstein_1d(s, e), "speed_mean": float(s.mean()), "speed_sd": float(s.std()),
            "bounce_rate": bounce_rate(centroids(x))}


def horizon_mse(pred: torch.Tensor, truth: torch.Tensor, given: int) -> list[float]:
    """Pixel MSE of frames ``given..T−1`` per horizon (1, 2, ...): ``[T − given]``."""
    err = ((pred[:, given:].double() - truth[:, given:].double()) ** 2).mean((0, 2, 3, 4))
    return [float(v) for v in err]


def copy_last(x: torch.Tensor, given: int) -> torch.Tensor:
    """The copy-the-last-given-frame forecast of clips ``[N, T, ...]``."""
    out = x.clone()
    out[:, given:] = x[:, given - 1:given]
    return out


def pixel_scores(real: Samples, generated: Samples, seed: int = 0) -> dict[str, float]:
    """Classifier-free scores for any clips: pixel mean/sd gaps and the centroid-speed W1 between sets."""
    r, g = real.x.double(), generated.x.double()
    return {"pixel_mean_gap": float(abs(r.mean() - g.mean())), "pixel_sd_gap": float(abs(r.std() - g.std())),
            "speed_w1_vs_real": wasserstein_1d(speeds(centroids(generated.x)), speeds(centroids(real.x)))}
