"""A tiny time-conditioned network for trainer tests (x: [B, D], t: [B])."""

import torch
from torch import nn

from panflow import Samples


class Tiny(nn.Module):
    def __init__(self, dim: int = 2, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + 1, width), nn.SiLU(), nn.Linear(width, dim))
        self.poison_after: int | None = None
        self.calls = 0

    def forward(self, x, t, cond=None):
        self.calls += 1
        out = self.net(torch.cat([x, t[:, None].to(x.dtype)], -1))
        if self.poison_after is not None and self.calls > self.poison_after:
            out = out * float("nan")
        return out


def toy_data(n: int = 512, dim: int = 2, seed: int = 0) -> Samples:
    g = torch.Generator().manual_seed(seed)
    return Samples(torch.randn(n, dim, generator=g) * 0.5 + 1.0)
