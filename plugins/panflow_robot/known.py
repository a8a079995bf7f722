"""The committed-overlap known sampler: the first ``overlap`` steps of a chunk are given.

When a policy re-plans, the first ``overlap`` steps of the new chunk are actions it has already
executed; training presents them clean (known) in a fraction ``1 − p_none`` of windows so that the
sampler can hold them and the new chunk continues them smoothly. The rest of the windows have
nothing known, so the same model also plans the first chunk of an episode.
"""

from __future__ import annotations

import torch

from panflow import ConfigError, KnownSampler, register_known_sampler


@register_known_sampler
class CommittedKnown(KnownSampler):
    name = "committed"

    def __init__(self, overlap: int = 2, p_none: float = 0.2):
        if overlap < 1:
            raise ConfigError(f"known sampler 'committed': overlap must be >= 1, got {overlap}")
        if not 0.0 <= p_none <= 1.0:
            raise ConfigError(f"known sampler 'committed': p_none must be in [0, 1], got {p_none}")
        self.overlap, self.p_none = int(overlap), float(p_none)

    def draw(self, n, time_shape, generator, device):
        if not time_shape or time_shape[0] <= self.overlap:
            raise ConfigError(f"known sampler 'committed' needs per-step time longer than the overlap {self.overlap}")
        none = torch.rand(n, generator=generator, device=device) < self.p_none
        known = (torch.arange(time_shape[0], device=device) < self.overlap)[None].expand(n, -1)
        return known & ~none[:, None]

    def to_json(self):
        return {"name": self.name, "overlap": self.overlap, "p_none": self.p_none}


def committed_mask(n: int, pred: int, overlap: int) -> torch.Tensor:
    """``bool [n, pred]``: the first ``overlap`` steps known (what a re-planning policy holds)."""
    return (torch.arange(pred) < overlap)[None].expand(n, -1).clone()
