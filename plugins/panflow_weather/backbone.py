"""A UNet over the lat-lon grid: circular padding in longitude, across-the-pole padding in latitude.

Input: the noisy residual ``x_t [B, C, H, W]`` concatenated with the normalised previous states
``prev [B, 2C, H, W]`` and context ``[B, K, H, W]`` (spatial conditions by concatenation); the
flow time enters every residual block as a scale and shift (FiLM), with any global vector or label
condition (e.g. a shortcut model's step size) embedded and added to it. Padding: longitude wraps
around; rows beyond a pole are the rows next to it shifted by 180° of longitude (the correct
continuation of a scalar field over the pole on a regular lat-lon grid). Odd or awkward numbers
of latitudes are padded the same way up to a multiple of 2^levels and cropped back.
"""

from __future__ import annotations

import json

import torch
from torch import nn
from torch.nn import functional as F

from panflow import ConditionEmbedding, ConditionSpec, ConfigError, DataSpec, TimeEmbedding, consumes_labels_and_vectors

SPATIAL = ("prev", "context")  # conditions concatenated to the input; the rest are global vectors


def pad_sphere(x: torch.Tensor, p: int) -> torch.Tensor:
    """Pad ``[B, C, H, W]`` by ``p`` cells: circular in W, over-the-pole (mirror + half-turn) in H."""
    if p == 0:
        return x
    w = x.shape[-1]
    north = torch.roll(x[..., :p, :].flip(-2), w // 2, dims=-1)
    south = torch.roll(x[..., -p:, :].flip(-2), w // 2, dims=-1)
    x = torch.cat([north, x, south], dim=-2)
    return torch.cat([x[..., -p:], x, x[..., :p]], dim=-1)


class SphereConv(nn.Conv2d):
    """A 3x3 (or kxk) convolution whose padding is :func:`pad_sphere`."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1):
        super().__init__(cin, cout, k, stride=stride, padding=0)
        self.p = k // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(pad_sphere(x, self.p))


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, tdim: int):
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(min(8, cin), cin), SphereConv(cin, cout)
        self.n2, self.c2 = nn.GroupNorm(min(8, cout), cout), SphereConv(cout, cout)
        self.film = nn.Linear(tdim, 2 * cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x)))
        scale, shift = self.film(temb)[:, :, None, None].chunk(2, dim=1)
        h = self.n2(h) * (1 + scale) + shift
        return self.skip(x) + self.c2(F.silu(h))


def _norm(c: ConditionSpec, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not c.normalisation:
        return torch.zeros(channels), torch.ones(channels)
    d = json.loads(c.normalisation)
    return torch.tensor(d["mean"], dtype=torch.float32), torch.tensor(d["std"], dtype=torch.float32)


class WeatherUNet(nn.Module):
    """``(x_t [B, C, H, W], t [B], cond {"prev": [B, 2, C, H, W], "context": [B, K, H, W], ...}) -> [B, C, H, W]``;
    other conditions are global (:class:`panflow.ConditionEmbedding`, added to the time embedding)."""

    def __init__(self, spec: DataSpec, channels: int = 32, mults: tuple[int, ...] = (1, 2, 2), num_res: int = 1):
        super().__init__()
        c, h, w = spec.shape
        self.levels = len(mults) - 1
        if w % (2 ** self.levels):
            raise ConfigError(f"the weather UNet needs a number of longitudes divisible by {2 ** self.levels}, got {w}")
        conds = {k.name: k for k in spec.conditions}
        self.cond_names = [n for n in SPATIAL if n in conds]
        cin = c
        for n in self.cond_names:
            k = conds[n]
            per = k.shape[1] if n == "prev" else k.shape[0]
            mean, std = _norm(k, per)
            self.register_buffer(f"{n}_mean", mean.reshape(-1, 1, 1), persistent=False)
            self.register_buffer(f"{n}_std", std.reshape(-1, 1, 1), persistent=False)
            cin += per * (k.shape[0] if n == "prev" else 1)
        tdim = 4 * channels
        self.temb = TimeEmbedding(tdim)
        vectors = tuple(k for k in spec.conditions if k.name not in SPATIAL)
        self.vectors = ConditionEmbedding(vectors, tdim) if vectors else None
        self.inp = SphereConv(cin, channels)
        self.down, self.pool = nn.ModuleList(), nn.ModuleList()
        chs, cur = [channels], channels
        for i, m in enumerate(mults):
            blocks = nn.ModuleList()
            for _ in range(num_res):
                blocks.append(ResBlock(cur, channels * m, tdim))
                cur = channels * m
            self.down.append(blocks)
            chs.append(cur)
            if i < self.levels:
                self.pool.append(SphereConv(cur, cur, 3, stride=2))
        self.mid = ResBlock(cur, cur, tdim)
        self.up = nn.ModuleList()
        for i, m in reversed(list(enumerate(mults))):
            blocks = nn.ModuleList([ResBlock(cur + chs[i + 1], channels * m, tdim)])
            cur = channels * m
            for _ in range(num_res - 1):
                blocks.append(ResBlock(cur, cur, tdim))
            self.up.append(blocks)
        self.out_norm = nn.GroupNorm(min(8, cur), cur)
        self.out = SphereConv(cur, c)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _inputs(self, x: torch.Tensor, cond: dict) -> torch.Tensor:
        parts = [x]
        for n in self.cond_names:
            v = cond.get(n) if isinstance(cond, dict) else None
            if v is None:
                raise ConfigError(f"the weather UNet needs condition '{n}'")
            v = v.to(x.dtype)
            if n == "prev":
                v = ((v - self.prev_mean) / self.prev_std).flatten(1, 2)
            else:
                v = (v - self.context_mean) / self.context_std
            parts.append(v)
        return torch.cat(parts, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict | None = None) -> torch.Tensor:
        h0 = x.shape[-2]
        z = self._inputs(x, cond or {})
        mult = 2 ** self.levels
        extra = (-h0) % mult
        if extra:  # pad latitude over the poles to a multiple of 2^levels, crop at the end
            n, s = extra // 2, extra - extra // 2
            wq = z.shape[-1] // 2
            z = torch.cat([torch.roll(z[..., :n, :].flip(-2), wq, -1), z,
                           torch.roll(z[..., z.shape[-2] - s:, :].flip(-2), wq, -1)], -2)
        temb = self.temb(t.reshape(-1) if t.dim() > 1 else t)
        if self.vectors is not None:
            temb = temb + self.vectors(cond, x.shape[0], x.device).to(temb.dtype)
        h = self.inp(z)
        skips = []
        for i, blocks in enumerate(self.down):
            for b in blocks:
                h = b(h, temb)
            skips.append(h)
            if i < self.levels:
                h = self.pool[i](h)
        h = self.mid(h, temb)
        for j, blocks in enumerate(self.up):
            if j > 0:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = torch.cat([h, skips[self.levels - j]], 1)
            for b in blocks:
                h = b(h, temb)
        out = self.out(F.silu(self.out_norm(h)))
        if extra:
            out = out[..., extra // 2: extra // 2 + h0, :]
        return out


def fits(spec: DataSpec) -> bool:
    """Grids ``[C, H, W]`` whose spatial conditions (``prev``, ``context``) lie on the data's grid."""
    return len(spec.shape) == 3 and all(
        c.kind == "tensor" and tuple(c.shape[-2:]) == tuple(spec.shape[-2:]) for c in spec.conditions if c.name in SPATIAL)


def consumes(cond: ConditionSpec, spec: DataSpec) -> bool:
    """Spatial tensor conditions on the data's grid named ``prev`` or ``context``; any other label or
    one-axis tensor condition as a global vector."""
    if cond.name in SPATIAL:
        return cond.kind == "tensor" and tuple(cond.shape[-2:]) == tuple(spec.shape[-2:])
    return consumes_labels_and_vectors(cond, spec)


def build_unet(spec: DataSpec, channels: int = 32, mults: list | tuple = (1, 2, 2), num_res: int = 1) -> WeatherUNet:
    return WeatherUNet(spec, channels, tuple(mults), num_res)
