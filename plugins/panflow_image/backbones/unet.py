"""An ADM-style UNet (Dhariwal & Nichol 2021): residual blocks with scale-shift time/class
conditioning, self-attention at low resolution, skip connections.

``model(x [B, C, H, W], t [B], cond {"label": [B]} | {}) -> [B, C, H, W]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from panflow import DataSpec, LabelEmbedding, TimeEmbedding


def norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, c), c)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int, dropout: float):
        super().__init__()
        self.in_layers = nn.Sequential(norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb, 2 * cout))
        self.out_norm = norm(cout)
        self.out_layers = nn.Sequential(nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(cout, cout, 3, padding=1))
        nn.init.zeros_(self.out_layers[-1].weight)
        nn.init.zeros_(self.out_layers[-1].bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        scale, shift = self.emb(e)[:, :, None, None].chunk(2, dim=1)
        h = self.out_norm(h) * (1 + scale) + shift
        return self.skip(x) + self.out_layers(h)


class Attention(nn.Module):
    def __init__(self, c: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = norm(c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        a = nn.functional.scaled_dot_product_attention(q, k, v)
        return x + self.proj(a.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    def __init__(self, in_channels: int, resolution: int, channels: int = 64, mults: tuple[int, ...] = (1, 2),
                 num_res: int = 2, attn_resolutions: tuple[int, ...] = (4,), heads: int = 4, dropout: float = 0.1,
                 num_classes: int = 0):
        super().__init__()
        emb = 4 * channels
        self.time = TimeEmbedding(emb)
        self.label = LabelEmbedding(num_classes, emb) if num_classes else None
        self.inp = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.down = nn.ModuleList()
        skips, c, res = [channels], channels, resolution
        for i, m in enumerate(mults):
            for _ in range(num_res):
                blocks = [ResBlock(c, channels * m, emb, dropout)]
                c = channels * m
                if res in attn_resolutions:
                    blocks.append(Attention(c, heads))
                self.down.append(nn.ModuleList(blocks))
                skips.append(c)
            if i < len(mults) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(c, c, 3, stride=2, padding=1)]))
                skips.append(c)
                res //= 2
        self.mid = nn.ModuleList([ResBlock(c, c, emb, dropout), Attention(c, heads), ResBlock(c, c, emb, dropout)])
        self.up = nn.ModuleList()
        for i, m in reversed(list(enumerate(mults))):
            for j in range(num_res + 1):
                blocks = [ResBlock(c + skips.pop(), channels * m, emb, dropout)]
                c = channels * m
                if res in attn_resolutions:
                    blocks.append(Attention(c, heads))
                if i > 0 and j == num_res:
                    blocks.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                nn.Conv2d(c, c, 3, padding=1)))
                    res *= 2
                self.up.append(nn.ModuleList(blocks))
        self.out = nn.Sequential(norm(c), nn.SiLU(), nn.Conv2d(c, in_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    @staticmethod
    def _run_blocks(blocks, h, e):
        for blk in blocks:
            h = blk(h, e) if isinstance(blk, ResBlock) else blk(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict | None = None) -> torch.Tensor:
        y = (cond or {}).get("label")
        e = self.time(t)
        if self.label is not None:
            e = e + self.label(y, x.shape[0], x.device)
        h = self.inp(x)
        hs = [h]
        for blocks in self.down:
            h = self._run_blocks(blocks, h, e)
            hs.append(h)
        h = self._run_blocks(self.mid, h, e)
        for blocks in self.up:
            h = self._run_blocks(blocks, torch.cat([h, hs.pop()], 1), e)
        return self.out(h)


def build_unet(spec: DataSpec, channels: int = 64, mults: tuple[int, ...] | list[int] = (1, 2), num_res: int = 2,
               attn_resolutions: tuple[int, ...] | list[int] = (4,), heads: int = 4, dropout: float = 0.1) -> UNet:
    c, h, w = spec.shape
    return UNet(c, h, channels, tuple(mults), num_res, tuple(attn_resolutions), heads, dropout, spec.num_classes)
