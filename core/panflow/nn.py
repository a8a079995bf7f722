"""Building blocks shared by backbones of every domain (time embeddings, adaLN transformer)."""

from __future__ import annotations

import math

import torch
from torch import nn


class TimeEmbedding(nn.Module):
    """Sinusoidal features of ``t`` (scaled by 1000) followed by a 2-layer MLP.

    ``t: [B]`` gives ``[B, dim]``; per-element times ``t: [B, *time_shape]`` give
    ``[B, *time_shape, dim]`` (one embedding per frame / step / residue).
    """

    def __init__(self, dim: int, freq_dim: int = 128, max_period: float = 10_000.0):
        super().__init__()
        half = freq_dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * half, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = 1000.0 * t.float()[..., None] * self.freqs
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class LabelEmbedding(nn.Module):
    """Class labels ``[B]`` in ``0..num_classes`` (``num_classes`` = null, for guidance): ``[B, dim]``."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes + 1, dim)

    def forward(self, y: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        if y is None:
            y = torch.full((batch,), self.num_classes, dtype=torch.long, device=device)
        return self.embed(y)


class ConditionEmbedding(nn.Module):
    """All of a spec's conditions as one vector ``[B, dim]`` (summed), for global conditioning.

    Labels use an embedding table with a null row (id ``num_classes``); tensor conditions are
    flattened through a 2-layer MLP, and rows flagged ``cond[name + ".null"]`` get a learned null
    vector instead (so a dropped condition is not confused with an all-zero one). Conditions not in
    ``cond`` (or ``cond`` empty) count as null. Spatial conditions that should be concatenated to the
    input instead are the backbone's business; this module is for vectors and labels.
    """

    def __init__(self, conditions, dim: int, hidden: int | None = None):
        super().__init__()
        self.specs = tuple(conditions)
        self.labels = nn.ModuleDict()
        self.tensors = nn.ModuleDict()
        self.nulls = nn.ParameterDict()
        for c in self.specs:
            if c.kind == "label":
                self.labels[c.name] = nn.Embedding(c.num_classes + 1, dim)
            else:
                width = math.prod(c.shape) if c.shape else 1
                h = hidden or dim
                self.tensors[c.name] = nn.Sequential(nn.Linear(width, h), nn.SiLU(), nn.Linear(h, dim))
                self.nulls[c.name] = nn.Parameter(torch.zeros(dim))
        self.dim = dim

    def forward(self, cond: dict | None, batch: int, device: torch.device) -> torch.Tensor:
        cond = cond or {}
        out = torch.zeros(batch, self.dim, device=device)
        for c in self.specs:
            v = cond.get(c.name)
            if c.kind == "label":
                y = v if v is not None else torch.full((batch,), c.num_classes, dtype=torch.long, device=device)
                out = out + self.labels[c.name](y)
                continue
            null = self.nulls[c.name].to(out.dtype)
            if v is None:
                out = out + null
                continue
            e = self.tensors[c.name](v.reshape(batch, -1).to(out.dtype))
            drop = cond.get(c.name + ".null")
            if drop is not None:
                e = torch.where(drop.reshape(batch, 1), null.expand_as(e), e)
            out = out + e
        return out


class Rotary(nn.Module):
    """Rotary position embedding (Su et al. 2021, RoFormer) for 1-D sequences.

    ``forward(length) -> (cos, sin)``, each ``[length, head_dim]``; blocks rotate queries and keys
    with them so attention scores depend on relative position from the first step of training.
    """

    def __init__(self, head_dim: int, base: float = 10_000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head dimension, got {head_dim}")
        inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv, persistent=False)

    def forward(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        ang = torch.arange(length, device=self.inv_freq.device, dtype=torch.float32)[:, None] * self.inv_freq[None]
        ang = torch.cat([ang, ang], dim=-1)
        return ang.cos(), ang.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x: [B, H, L, d]`` by position (``cos, sin: [L, d]``), halves paired."""
    a, b = x.chunk(2, dim=-1)
    return (x * cos + torch.cat([-b, a], dim=-1) * sin).to(x.dtype)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: ``x · (1 + scale) + shift`` with ``shift, scale: [B, D]`` broadcast over tokens."""
    return x * (1 + scale[:, None]) + shift[:, None]


class AdaLNBlock(nn.Module):
    """Pre-norm transformer block with adaLN-Zero conditioning (Peebles & Xie 2023).

    ``x: [B, L, D]``, ``c: [B, D]``; ``causal`` masks attention to the past; ``rotary``
    (``(cos, sin)`` from :class:`Rotary`) rotates queries and keys by position; ``attn_mask``
    (bool ``[L, Lk]``, True = attend) sets any pattern; ``kv`` (a slot of :class:`panflow.KVCache`)
    prepends cached keys/values of earlier tokens (block diffusion, :mod:`panflow.blocks`).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[-1].weight)
        nn.init.zeros_(self.ada[-1].bias)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, c: torch.Tensor, causal: bool = False,
                key_padding: torch.Tensor | None = None,
                rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
                attn_mask: torch.Tensor | None = None, kv=None) -> torch.Tensor:
        b, l, d = x.shape
        s1, g1, a1, s2, g2, a2 = self.ada(c).chunk(6, dim=-1)
        h = modulate(self.norm1(x), s1, g1)
        q, k, v = self.qkv(h).reshape(b, l, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        if kv is not None:
            k, v = kv.extend(k, v)
        mask = attn_mask
        if key_padding is not None:
            pad = key_padding[:, None, None, :].bool()
            mask = pad if mask is None else pad & mask
        att = nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal and mask is None,
            dropout_p=self.dropout if self.training else 0.0)
        x = x + a1[:, None] * self.proj(att.transpose(1, 2).reshape(b, l, d))
        x = x + a2[:, None] * self.mlp(modulate(self.norm2(x), s2, g2))
        return x


class AdaLNOutput(nn.Module):
    """Final adaLN-modulated norm and zero-initialised projection to ``out_dim``."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.out = nn.Linear(dim, out_dim)
        for m in (self.ada[-1], self.out):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.ada(c).chunk(2, dim=-1)
        return self.out(modulate(self.norm(x), shift, scale))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
