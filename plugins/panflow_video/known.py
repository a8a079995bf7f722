"""The video known sampler: one model for generation, prediction and interpolation.

Per training clip one task is drawn: nothing given (probability ``p_none``: unconditional), the first
``k`` frames given (``p_prefix``: future prediction, ``k`` uniform in ``1..T−2``), or the first
``k`` and the last ``j`` frames given (the rest: interpolation, ``k, j ≥ 1`` with at least one
frame left to generate). Masks are ``bool [n, T]``.
"""

from __future__ import annotations

import torch

from panflow import ConfigError, KnownSampler, register_known_sampler


@register_known_sampler
class VideoTasks(KnownSampler):
    name = "video-tasks"

    def __init__(self, p_none: float = 0.3, p_prefix: float = 0.5):
        if not (0 <= p_none <= 1 and 0 <= p_prefix <= 1 and p_none + p_prefix <= 1):
            raise ConfigError(f"known sampler 'video-tasks': p_none and p_prefix must be probabilities with sum <= 1, "
                              f"got {p_none}, {p_prefix}")
        self.p_none, self.p_prefix = float(p_none), float(p_prefix)

    def draw(self, n, time_shape, generator, device):
        if len(time_shape) != 1 or time_shape[0] < 3:
            raise ConfigError("known sampler 'video-tasks' needs per-frame time over at least 3 frames")
        t = time_shape[0]
        u = torch.rand(n, generator=generator, device=device)
        k = torch.randint(1, t - 1, (n,), generator=generator, device=device)           # 1..T-2 given at the start
        j = (torch.rand(n, generator=generator, device=device) * (t - k)).long().clamp(1, None)  # >= 1 at the end
        j = torch.minimum(j, t - 1 - k)
        pos = torch.arange(t, device=device)[None]
        prefix = pos < k[:, None]
        ends = prefix | (pos >= (t - j)[:, None])
        none = u < self.p_none
        pre = (u >= self.p_none) & (u < self.p_none + self.p_prefix)
        out = torch.where(pre[:, None], prefix, ends)
        return out & ~none[:, None]

    def to_json(self):
        return {"name": self.name, "p_none": self.p_none, "p_prefix": self.p_prefix}


def prefix_mask(n: int, frames: int, given: int) -> torch.Tensor:
    """``bool [n, frames]``: the first ``given`` frames known (prediction)."""
    return (torch.arange(frames) < given)[None].expand(n, -1).clone()


def ends_mask(n: int, frames: int, first: int, last: int) -> torch.Tensor:
    """``bool [n, frames]``: the first ``first`` and last ``last`` frames known (interpolation)."""
    pos = torch.arange(frames)
    return ((pos < first) | (pos >= frames - last))[None].expand(n, -1).clone()
