"""A factorised space-time UNet ((2+1)-D): 2-D convolutions within each frame, 1-D convolutions and
attention across frames (the factorisation of Tran et al. 2018, "R(2+1)D"; Ho et al. 2022, "Video
Diffusion Models", use the same split with attention).

``model(x [B, T, C, H, W], t [B] or [B, T], cond) -> [B, T, C, H, W]``. Every frame has its own
time: its embedding scales and shifts that frame's features, so frames given clean (known, t = 1)
and frames being generated (t < 1) sit in one volume and the temporal layers carry what is given to
what is not. ``temporal=False`` drops every cross-frame layer: the same network then denoises each
frame on its own (the per-frame image baseline).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from panflow import ConditionEmbedding, DataSpec, TimeEmbedding


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, c), c)


class SpatialRes(nn.Module):
    """Per-frame residual block: ``[N, cin, H, W]`` with embedding ``e [N, emb]`` → ``[N, cout, H, W]``."""

    def __init__(self, cin: int, cout: int, emb: int):
        super().__init__()
        self.conv1 = nn.Sequential(_norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.film = nn.Sequential(nn.SiLU(), nn.Linear(emb, 2 * cout))
        self.norm2 = _norm(cout)
        self.conv2 = nn.Sequential(nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1))
        nn.init.zeros_(self.conv2[-1].weight)
        nn.init.zeros_(self.conv2[-1].bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(e)[:, :, None, None].chunk(2, 1)
        return self.skip(x) + self.conv2(self.norm2(self.conv1(x)) * (1 + scale) + shift)


class TemporalConv(nn.Module):
    """Residual 1-D convolution over frames at every pixel: ``[B·T, C, H, W]`` → same (zero-initialised)."""

    def __init__(self, c: int, frames: int, kernel: int = 3):
        super().__init__()
        self.frames = frames
        self.norm = _norm(c)
        self.conv = nn.Conv3d(c, c, (kernel, 1, 1), padding=(kernel // 2, 0, 0))  # over T only
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        b, t = n // self.frames, self.frames
        y = nn.functional.silu(self.norm(x)).reshape(b, t, c, h, w).transpose(1, 2)  # [B, C, T, H, W]
        return x + self.conv(y).transpose(1, 2).reshape(n, c, h, w)


class TemporalAttention(nn.Module):
    """Residual self-attention across the frames of each pixel, with learned frame positions."""

    def __init__(self, c: int, frames: int, heads: int):
        super().__init__()
        if c % heads:
            raise ValueError(f"temporal attention over {c} channels cannot be split into {heads} heads")
        self.frames, self.heads = frames, heads
        self.norm = _norm(c)
        self.pos = nn.Parameter(torch.zeros(frames, c))
        nn.init.normal_(self.pos, std=0.02)
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = nn.Linear(c, c)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        b, t = n // self.frames, self.frames
        y = self.norm(x).reshape(b, t, c, h, w).permute(0, 3, 4, 1, 2).reshape(b * h * w, t, c) + self.pos
        q, k, v = self.qkv(y).reshape(b * h * w, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b * h * w, t, c)
        y = self.proj(a).reshape(b, h, w, t, c).permute(0, 3, 4, 1, 2).reshape(n, c, h, w)
        return x + y


class STStage(nn.Module):
    """A spatial residual block, then (when temporal) a temporal convolution and optional attention."""

    def __init__(self, cin: int, cout: int, emb: int, frames: int, temporal: bool, attn: bool, heads: int):
        super().__init__()
        self.spatial = SpatialRes(cin, cout, emb)
        mix: list[nn.Module] = []
        if temporal:
            mix.append(TemporalConv(cout, frames))
            if attn:
                mix.append(TemporalAttention(cout, frames, heads))
        self.mix = nn.Sequential(*mix)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return self.mix(self.spatial(x, e))


class SpaceTimeUNet(nn.Module):
    """The (2+1)-D UNet for clips ``[B, T, C, H, W]``; ``H, W`` divisible by ``2 ** (len(mults) - 1)``.

    Temporal attention runs at the levels whose ``min(h, w)`` is at most ``attn_below`` (and in the
    middle block).
    """

    def __init__(self, frames: int, channels_in: int, size: tuple[int, int], channels: int = 32,
                 mults: Sequence[int] = (1, 2, 2), attn_below: int = 8, heads: int = 4, temporal: bool = True,
                 conditions: Sequence = ()):
        super().__init__()
        h, w = size
        f = 2 ** (len(mults) - 1)
        if h % f or w % f:
            raise ValueError(f"SpaceTimeUNet with {len(mults)} levels needs H and W divisible by {f}, got {h}x{w}")
        self.frames, emb = frames, 4 * channels
        self.time = TimeEmbedding(emb)
        self.vectors = ConditionEmbedding(tuple(conditions), emb) if conditions else None  # global, e.g. a step size
        self.inp = nn.Conv2d(channels_in, channels, 3, padding=1)
        self.down, self.pool, self.up, self.unpool = nn.ModuleList(), nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        c, skips = channels, []
        for i, m in enumerate(mults):
            self.down.append(STStage(c, channels * m, emb, frames, temporal, min(h, w) <= attn_below, heads))
            c = channels * m
            skips.append(c)
            if i < len(mults) - 1:
                self.pool.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                h, w = h // 2, w // 2
        self.mid1 = STStage(c, c, emb, frames, temporal, True, heads)
        self.mid2 = STStage(c, c, emb, frames, temporal, False, heads)
        for i, m in reversed(list(enumerate(mults))):
            self.up.append(STStage(c + skips.pop(), channels * m, emb, frames, temporal, min(h, w) <= attn_below, heads))
            c = channels * m
            if i > 0:
                self.unpool.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)))
                h, w = h * 2, w * 2
        self.out = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv2d(c, channels_in, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict | None = None) -> torch.Tensor:
        b, frames, c, h, w = x.shape
        if frames != self.frames:
            raise ValueError(f"SpaceTimeUNet was built for {self.frames} frames, got {frames}")
        t = t.reshape(b, -1).expand(b, frames) if t.dim() <= 1 or t.shape[1:] != (frames,) else t
        e = self.time(t)
        if self.vectors is not None:
            e = e + self.vectors(cond, b, x.device).to(e.dtype)[:, None]
        e = e.reshape(b * frames, -1)
        hcur = self.inp(x.reshape(b * frames, c, h, w))
        hs = []
        for i, stage in enumerate(self.down):
            hcur = stage(hcur, e)
            hs.append(hcur)
            if i < len(self.pool):
                hcur = self.pool[i](hcur)
        hcur = self.mid2(self.mid1(hcur, e), e)
        for i, stage in enumerate(self.up):
            hcur = stage(torch.cat([hcur, hs.pop()], 1), e)
            if i < len(self.unpool):
                hcur = self.unpool[i](hcur)
        return self.out(hcur).reshape(b, frames, c, h, w)


def fits(spec: DataSpec) -> bool:
    """Clips ``[T, C, H, W]`` with per-frame time ``(T,)``."""
    return len(spec.shape) == 4 and tuple(spec.time_shape) in ((spec.shape[0],), ())


def build(spec: DataSpec, channels: int = 32, mults: Sequence[int] = (1, 2, 2), attn_below: int = 8, heads: int = 4,
          temporal: bool = True) -> SpaceTimeUNet:
    t, c, h, w = spec.shape
    return SpaceTimeUNet(t, c, (h, w), channels, tuple(mults), attn_below, heads, temporal, tuple(spec.conditions))


def build_per_frame(spec: DataSpec, **options) -> SpaceTimeUNet:
    """The same network with every cross-frame layer removed (each frame denoised on its own)."""
    return build(spec, **{**options, "temporal": False})
