"""A small MLP with sinusoidal time features for low-dimensional continuous data."""

from __future__ import annotations

import math

import torch
from torch import nn

from panflow import DataSpec


class TimeMLP(nn.Module):
    """``(x [B, D], t [B], cond [B] | None) -> [B, D]``: ``depth`` hidden layers of ``width``, SiLU."""

    def __init__(self, dim: int, width: int = 256, depth: int = 4, time_features: int = 32, num_classes: int = 0):
        super().__init__()
        half = time_features // 2
        self.register_buffer("freqs", torch.exp(-math.log(1000.0) * torch.arange(half) / half), persistent=False)
        layers: list[nn.Module] = [nn.Linear(dim + 2 * half, width), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.SiLU()]
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)
        self.label = nn.Embedding(num_classes + 1, 2 * half) if num_classes else None

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(shape[0], -1)
        tt = t.reshape(t.shape[0], -1)[:, :1] if t.dim() > 1 else t[:, None]
        args = 100.0 * tt.float() * self.freqs[None]
        feats = torch.cat([args.cos(), args.sin()], -1).to(x.dtype)
        if self.label is not None:
            y = cond if cond is not None else torch.full((shape[0],), self.label.num_embeddings - 1,
                                                         dtype=torch.long, device=x.device)
            feats = feats + self.label(y).to(x.dtype)
        return self.net(torch.cat([x, feats], -1)).reshape(shape)


def build_mlp(spec: DataSpec, width: int = 256, depth: int = 4, time_features: int = 32) -> TimeMLP:
    return TimeMLP(math.prod(spec.shape), width, depth, time_features, spec.num_classes)
