"""DiT (Peebles & Xie 2023): patchify, transformer blocks with adaLN-Zero conditioning on
time + class, unpatchify. ``model(x [B, C, H, W], t [B], cond {"label": [B]} | {}) -> [B, C, H, W]``."""

from __future__ import annotations

import math

import torch
from torch import nn

from panflow import AdaLNBlock, AdaLNOutput, DataSpec, LabelEmbedding, TimeEmbedding


def sincos_2d(dim: int, h: int, w: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding ``[h·w, dim]``."""
    quarter = dim // 4
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(quarter) / quarter)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    parts = []
    for coord in (ys.flatten(), xs.flatten()):
        a = coord[:, None] * freqs[None]
        parts += [a.sin(), a.cos()]
    return torch.cat(parts, 1)


class DiT(nn.Module):
    def __init__(self, channels: int, resolution: int, patch: int = 2, dim: int = 192, depth: int = 6,
                 heads: int = 4, num_classes: int = 0):
        super().__init__()
        if resolution % patch:
            raise ValueError(f"resolution {resolution} is not divisible by the patch size {patch}")
        self.channels, self.patch, self.grid = channels, patch, resolution // patch
        self.embed = nn.Linear(channels * patch * patch, dim)
        self.register_buffer("pos", sincos_2d(dim, self.grid, self.grid)[None], persistent=False)
        self.time = TimeEmbedding(dim)
        self.label = LabelEmbedding(num_classes, dim) if num_classes else None
        self.blocks = nn.ModuleList([AdaLNBlock(dim, heads) for _ in range(depth)])
        self.final = AdaLNOutput(dim, channels * patch * patch)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict | None = None) -> torch.Tensor:
        y = (cond or {}).get("label")
        b, c, h, w = x.shape
        p, g = self.patch, self.grid
        tokens = x.reshape(b, c, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, c * p * p)
        h_ = self.embed(tokens) + self.pos
        cond = self.time(t)
        if self.label is not None:
            cond = cond + self.label(y, b, x.device)
        for blk in self.blocks:
            h_ = blk(h_, cond)
        out = self.final(h_, cond)
        return out.reshape(b, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def build_dit(spec: DataSpec, patch: int = 2, dim: int = 192, depth: int = 6, heads: int = 4) -> DiT:
    c, h, w = spec.shape
    if h != w:
        raise ValueError(f"DiT expects square images, got {h}x{w}")
    return DiT(c, h, patch, dim, depth, heads, spec.num_classes)
