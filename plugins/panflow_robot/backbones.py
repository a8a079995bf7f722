"""Action-chunk backbones: ``model(x_t [B, H, a], t [B] or [B, H], cond) -> [B, H, a]``.

- :class:`ChunkUNet` — the Diffusion Policy CNN (Chi et al. 2023): a 1-D temporal conv UNet over
  the chunk whose residual blocks are FiLM-modulated (per-channel scale and bias) by the observation
  encoding plus the time embedding. Time here is per step (known steps sit at t = 1), so the FiLM
  parameters vary along the chunk; coarser levels see them average-pooled.
- :class:`ChunkTransformer` — the alternative on the core's :class:`panflow.AdaLNBlock`: one token
  per action step (input + position + its own time embedding), adaLN-modulated by the observation
  encoding and the time of the free steps.

Both read ``cond["obs"]`` (with its ``.null`` flags) through :class:`panflow.ConditionEmbedding`.
"""

from __future__ import annotations

import torch
from torch import nn

from panflow import AdaLNBlock, AdaLNOutput, ConditionEmbedding, ConfigError, DataSpec, TimeEmbedding


def _per_step_time(t: torch.Tensor, b: int, h: int) -> torch.Tensor:
    t = t.float()
    return t.reshape(b, 1).expand(b, h) if t.dim() <= 1 else t.reshape(b, h)


def _cond_dict(cond) -> dict:
    return cond if isinstance(cond, dict) else {}


class FiLMBlock(nn.Module):
    """Two conv-GroupNorm-Mish layers, the first FiLM-modulated by ``c [B, L, C_cond]``; residual."""

    def __init__(self, cin: int, cout: int, cdim: int, kernel: int = 5, groups: int = 8):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv1d(cin, cout, kernel, padding=kernel // 2), nn.GroupNorm(groups, cout), nn.Mish())
        self.conv2 = nn.Sequential(nn.Conv1d(cout, cout, kernel, padding=kernel // 2), nn.GroupNorm(groups, cout), nn.Mish())
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cdim, 2 * cout))
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        scale, bias = self.film(c).transpose(1, 2).chunk(2, dim=1)   # [B, C, L] each
        h = self.conv1(x) * (1 + scale) + bias
        return self.conv2(h) + self.skip(x)


class ChunkUNet(nn.Module):
    """1-D conv UNet over ``H`` action steps; channels ``dims`` per level (H divisible by 2^(levels−1))."""

    def __init__(self, spec: DataSpec, dims: tuple[int, ...] = (64, 128, 256), cond_dim: int = 128, kernel: int = 5):
        super().__init__()
        self.horizon, act = spec.shape
        self.cond = ConditionEmbedding(spec.conditions, cond_dim)
        self.time = TimeEmbedding(cond_dim)
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        chans = [act, *dims]
        for i in range(len(dims)):
            self.down.append(nn.ModuleList([FiLMBlock(chans[i], chans[i + 1], cond_dim, kernel),
                                            FiLMBlock(chans[i + 1], chans[i + 1], cond_dim, kernel)]))
        self.mid = nn.ModuleList([FiLMBlock(dims[-1], dims[-1], cond_dim, kernel) for _ in range(2)])
        for i in reversed(range(1, len(dims))):
            self.up.append(nn.ModuleList([FiLMBlock(2 * dims[i], dims[i - 1], cond_dim, kernel),
                                          FiLMBlock(dims[i - 1], dims[i - 1], cond_dim, kernel)]))
        self.out = nn.Sequential(nn.Conv1d(dims[0], dims[0], kernel, padding=kernel // 2), nn.Mish(),
                                 nn.Conv1d(dims[0], act, 1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        b, h, _ = x.shape
        c = self.time(_per_step_time(t, b, h)) + self.cond(_cond_dict(cond), b, x.device)[:, None]   # [B, H, D]
        levels = [c]
        for _ in range(len(self.down) - 1):
            levels.append(nn.functional.avg_pool1d(levels[-1].transpose(1, 2), 2).transpose(1, 2))
        z, skips = x.transpose(1, 2), []
        for i, (b1, b2) in enumerate(self.down):
            z = b2(b1(z, levels[i]), levels[i])
            skips.append(z)
            if i < len(self.down) - 1:
                z = nn.functional.avg_pool1d(z, 2)
        for blk in self.mid:
            z = blk(z, levels[-1])
        for j, (b1, b2) in enumerate(self.up):   # as Chi et al.: join the skip, then upsample
            lvl = len(self.down) - 1 - j
            z = b2(b1(torch.cat([z, skips[lvl]], 1), levels[lvl]), levels[lvl])
            z = nn.functional.interpolate(z, scale_factor=2, mode="nearest")
        return self.out(z).transpose(1, 2)


class ChunkTransformer(nn.Module):
    """A token per action step through ``depth`` :class:`panflow.AdaLNBlock` layers."""

    def __init__(self, spec: DataSpec, dim: int = 128, depth: int = 4, heads: int = 4):
        super().__init__()
        self.horizon, act = spec.shape
        self.inp = nn.Linear(act, dim)
        self.pos = nn.Parameter(torch.randn(self.horizon, dim) * 0.02)
        self.time = TimeEmbedding(dim)
        self.cond = ConditionEmbedding(spec.conditions, dim)
        self.blocks = nn.ModuleList([AdaLNBlock(dim, heads) for _ in range(depth)])
        self.out = AdaLNOutput(dim, act)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        b, h, _ = x.shape
        ts = _per_step_time(t, b, h)
        tok = self.inp(x) + self.pos[None] + self.time(ts)
        c = self.cond(_cond_dict(cond), b, x.device) + self.time(ts.amin(1))   # free steps carry the smallest t
        for blk in self.blocks:
            tok = blk(tok, c)
        return self.out(tok, c)


def fits_chunks(spec: DataSpec, levels: int = 1) -> bool:
    """A ``[H, a]`` chunk with per-step time, ``H`` divisible by ``2^(levels−1)``."""
    return (len(spec.shape) == 2 and tuple(spec.time_shape) == (spec.shape[0],)
            and spec.shape[0] % (2 ** (levels - 1)) == 0)


def build_unet(spec: DataSpec, **kw) -> ChunkUNet:
    if "dims" in kw:
        kw["dims"] = tuple(kw["dims"])
    levels = len(kw.get("dims", (64, 128, 256)))
    if not fits_chunks(spec, levels):
        raise ConfigError(f"chunk-unet with {levels} levels needs a prediction horizon divisible by "
                          f"{2 ** (levels - 1)}, got data shape {list(spec.shape)}")
    return ChunkUNet(spec, **kw)


def build_transformer(spec: DataSpec, **kw) -> ChunkTransformer:
    return ChunkTransformer(spec, **kw)
