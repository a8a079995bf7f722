"""The ``motif`` known-part sampler: one to ``max_segments`` contiguous residue segments are given.

Motif scaffolding conditions on a few contiguous stretches of Cα positions (a binding loop, a
helix), not on scattered residues, so training draws what sampling will ask for: per sample, with
probability ``1 - p_none``, ``k ~ U{1..max_segments}`` segments of ``U{min_len..max_len}`` residues at
uniform starts among the first ``span`` residues (``span`` defaults to the whole axis; the network
learns the real length from the ``residues`` condition, and known padding is excluded from the loss
by the padding mask anyway).
"""

from __future__ import annotations

import torch

from panflow import ConfigError, KnownSampler


class MotifKnown(KnownSampler):
    name = "motif"

    def __init__(self, p_none: float = 0.5, max_segments: int = 3, min_len: int = 3, max_len: int = 12, span: int = 0):
        if not 0.0 <= p_none <= 1.0 or max_segments < 1 or not 1 <= min_len <= max_len:
            raise ConfigError("known sampler 'motif': need 0 <= p_none <= 1, max_segments >= 1, 1 <= min_len <= max_len")
        self.p_none, self.max_segments, self.min_len, self.max_len, self.span = (
            float(p_none), int(max_segments), int(min_len), int(max_len), int(span))

    def draw(self, n, time_shape, generator, device):
        if len(time_shape) != 1:
            raise ConfigError("known sampler 'motif' needs one time per residue (time_shape (L,))")
        length = time_shape[0]
        span = min(self.span or length, length)
        pos = torch.arange(length, device=device)
        known = torch.zeros(n, length, dtype=torch.bool, device=device)
        k = torch.randint(1, self.max_segments + 1, (n,), generator=generator, device=device)
        for s in range(self.max_segments):
            ln = torch.randint(self.min_len, self.max_len + 1, (n,), generator=generator, device=device)
            start = (torch.rand(n, generator=generator, device=device) * (span - ln).clamp_min(1)).long()
            seg = (pos[None] >= start[:, None]) & (pos[None] < (start + ln)[:, None])
            known |= seg & (s < k)[:, None]
        none = torch.rand(n, generator=generator, device=device) < self.p_none
        return known & ~none[:, None]

    def to_json(self):
        return {"name": self.name, "p_none": self.p_none, "max_segments": self.max_segments,
                "min_len": self.min_len, "max_len": self.max_len, "span": self.span}
