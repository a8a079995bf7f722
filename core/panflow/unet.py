"""An ADM-style 2-D UNet (Dhariwal & Nichol 2021) usable by any domain whose data is ``[C, H, W]``.

Residual blocks with scale-shift time/class conditioning, self-attention at low resolution and
skip connections. Inputs may be rectangular (``H != W``: images, (mel, time) spectrograms, ...)
and have any channel count; ``H`` and ``W`` must be divisible by ``2 ** (len(mults) - 1)``.
Attention runs at every level whose ``min(h, w)`` is in ``attn_resolutions``.

``model(x [B, C, H, W], t [B] or [B, ...], cond) -> [B, C, H, W]`` where ``cond`` is
``{"label": LongTensor[B]}``, an empty dict, a bare label tensor ``[B]`` or ``None``; vector
conditions named in ``conditions`` (tensor kind, e.g. the shortcut objective's ``step``) are read
from the same dict and added to the time embedding (:class:`panflow.ConditionEmbedding`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .components import ConditionSpec
from .nn import ConditionEmbedding, LabelEmbedding, TimeEmbedding


def group_norm(c: int) -> nn.GroupNorm:
    """GroupNorm with ``gcd(32, c)`` groups (works for any channel count)."""
    return nn.GroupNorm(math.gcd(32, c), c)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with scale-shift conditioning on ``e: [B, emb]``; ``[B, cin, H, W] -> [B, cout, H, W]``."""

    def __init__(self, cin: int, cout: int, emb: int, dropout: float):
        super().__init__()
        self.in_layers = nn.Sequential(group_norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb, 2 * cout))
        self.out_norm = group_norm(cout)
        self.out_layers = nn.Sequential(nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(cout, cout, 3, padding=1))
        nn.init.zeros_(self.out_layers[-1].weight)
        nn.init.zeros_(self.out_layers[-1].bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        scale, shift = self.emb(e)[:, :, None, None].chunk(2, dim=1)
        h = self.out_norm(h) * (1 + scale) + shift
        return self.skip(x) + self.out_layers(h)


class Attention2d(nn.Module):
    """Multi-head self-attention over the ``H·W`` positions of ``[B, C, H, W]`` (residual, zero-initialised)."""

    def __init__(self, c: int, heads: int):
        super().__init__()
        if c % heads:
            raise ValueError(f"attention over {c} channels cannot be split into {heads} heads")
        self.heads = heads
        self.norm = group_norm(c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        a = nn.functional.scaled_dot_product_attention(q, k, v)
        return x + self.proj(a.transpose(-1, -2).reshape(b, c, h, w))


def _size(resolution: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(resolution, int):
        return resolution, resolution
    h, w = resolution
    return int(h), int(w)


class UNet(nn.Module):
    """The UNet; ``resolution`` is ``H`` (square) or ``(H, W)``."""

    def __init__(self, in_channels: int, resolution: int | Sequence[int], channels: int = 64,
                 mults: Sequence[int] = (1, 2), num_res: int = 2, attn_resolutions: Sequence[int] = (4,),
                 heads: int = 4, dropout: float = 0.1, num_classes: int = 0,
                 conditions: Sequence[ConditionSpec] = ()):
        super().__init__()
        h, w = _size(resolution)
        factor = 2 ** (len(mults) - 1)
        if h % factor or w % factor:
            raise ValueError(f"UNet with {len(mults)} levels needs H and W divisible by {factor}, got {h}x{w}")
        emb = 4 * channels
        self.time = TimeEmbedding(emb)
        self.label = LabelEmbedding(num_classes, emb) if num_classes else None
        vectors = tuple(c for c in conditions if c.kind == "tensor")  # global vector conditions (e.g. a step size)
        self.vectors = ConditionEmbedding(vectors, emb) if vectors else None
        self.inp = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.down = nn.ModuleList()
        skips, c = [channels], channels
        for i, m in enumerate(mults):
            for _ in range(num_res):
                blocks: list[nn.Module] = [ResBlock(c, channels * m, emb, dropout)]
                c = channels * m
                if min(h, w) in attn_resolutions:
                    blocks.append(Attention2d(c, heads))
                self.down.append(nn.ModuleList(blocks))
                skips.append(c)
            if i < len(mults) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(c, c, 3, stride=2, padding=1)]))
                skips.append(c)
                h, w = h // 2, w // 2
        self.mid = nn.ModuleList([ResBlock(c, c, emb, dropout), Attention2d(c, heads), ResBlock(c, c, emb, dropout)])
        self.up = nn.ModuleList()
        for i, m in reversed(list(enumerate(mults))):
            for j in range(num_res + 1):
                blocks = [ResBlock(c + skips.pop(), channels * m, emb, dropout)]
                c = channels * m
                if min(h, w) in attn_resolutions:
                    blocks.append(Attention2d(c, heads))
                if i > 0 and j == num_res:
                    blocks.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                nn.Conv2d(c, c, 3, padding=1)))
                    h, w = h * 2, w * 2
                self.up.append(nn.ModuleList(blocks))
        self.out = nn.Sequential(group_norm(c), nn.SiLU(), nn.Conv2d(c, in_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    @staticmethod
    def _run_blocks(blocks: nn.ModuleList, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        for blk in blocks:
            h = blk(h, e) if isinstance(blk, ResBlock) else blk(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict | torch.Tensor | None = None) -> torch.Tensor:
        y = cond.get("label") if isinstance(cond, dict) else cond
        e = self.time(t)
        if self.label is not None:
            e = e + self.label(y, x.shape[0], x.device)
        if self.vectors is not None:
            e = e + self.vectors(cond if isinstance(cond, dict) else {}, x.shape[0], x.device).to(e.dtype)
        h = self.inp(x)
        hs = [h]
        for blocks in self.down:
            h = self._run_blocks(blocks, h, e)
            hs.append(h)
        h = self._run_blocks(self.mid, h, e)
        for blocks in self.up:
            h = self._run_blocks(blocks, torch.cat([h, hs.pop()], 1), e)
        return self.out(h)
