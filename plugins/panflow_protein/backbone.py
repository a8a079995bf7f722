"""A transformer over residues for Cα traces (backbone ``ca-transformer``).

``model(x_t [B, L, 3], t [B, L] or [B], cond) -> velocity [B, L, 3]`` (nm; or ``[B, L, 5]`` internal
coordinates, see :class:`CaTransformer`). Per-residue Cartesian tokens are built from
- the residue's coordinates, its offset vectors and distances to the sequence neighbours
  ``i ± 1..4`` (local geometry: helices and strands are fixed patterns of these);
- a pairwise-distance profile: soft counts of all other residues within radial shells (burial /
  contact number from the full distance matrix, O(L²) per layer input);
- the residue's own time (known motif residues sit at t = 1) and, optionally, its amino acid;
the residue's index from either chain end (learned embeddings: each residue knows where it sits;
relative sequence position also enters through rotary attention, :class:`panflow.Rotary`); the blocks
are the core's adaLN-Zero :class:`panflow.AdaLNBlock`, modulated by the mean time of the residues
and the chain length. The length comes from the ``residues`` condition (1 = real, 0 = padding):
padding is masked out of attention and gets zero velocity; a null ``residues`` means "all real".
"""

from __future__ import annotations

import math

import torch
from torch import nn

from panflow import AdaLNBlock, AdaLNOutput, ConditionEmbedding, DataSpec, Rotary, TimeEmbedding, consumes_labels_and_vectors

from .internal import CHANNELS

OFFSETS = (1, 2, 3, 4)
PER_RESIDUE = ("residues", "seq")  # conditions read per token; the rest are global vectors


def residue_mask(cond: dict, b: int, length: int, device) -> torch.Tensor:
    """``[B, L]`` bool: real residues from ``cond['residues']`` (null or absent rows: all real)."""
    m = cond.get("residues") if isinstance(cond, dict) else None
    if m is None:
        return torch.ones(b, length, dtype=torch.bool, device=device)
    real = m > 0.5
    null = cond.get("residues.null")
    empty = ~real.any(1)
    if null is not None:
        empty = empty | null.reshape(b).bool()
    return torch.where(empty[:, None], torch.ones_like(real), real)


def local_features(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B, L, 4 · len(OFFSETS) · 2]``: offset vectors and distances to residues ``i ± k``."""
    feats = []
    for k in OFFSETS:
        for sign in (1, -1):
            shifted = torch.roll(x, -sign * k, dims=1)
            valid = torch.roll(mask, -sign * k, dims=1)
            idx = torch.arange(x.shape[1], device=x.device) + sign * k
            valid = valid & (idx >= 0)[None] & (idx < x.shape[1])[None] & mask
            d = (shifted - x) * valid[..., None]
            feats += [d, d.norm(dim=-1, keepdim=True)]
    return torch.cat(feats, -1)


def shell_counts(x: torch.Tensor, mask: torch.Tensor, centres: torch.Tensor, width: float) -> torch.Tensor:
    """``[B, L, S]``: Gaussian-smoothed counts of residues at each distance shell (nm)."""
    d = torch.cdist(x, x)
    w = torch.exp(-((d[..., None] - centres) / width) ** 2)
    pair = (mask[:, :, None] & mask[:, None, :]).to(x.dtype)
    pair = pair * (1 - torch.eye(x.shape[1], device=x.device, dtype=x.dtype))
    return (w * pair[..., None]).sum(2) / 10.0


def neighbour_channels(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B, L, C · 2 · len(OFFSETS)]``: the channels of residues ``i ± k`` (0 past the chain ends)."""
    feats = []
    for k in OFFSETS:
        for sign in (1, -1):
            idx = torch.arange(x.shape[1], device=x.device) + sign * k
            valid = torch.roll(mask, -sign * k, dims=1) & (idx >= 0)[None] & (idx < x.shape[1])[None] & mask
            feats.append(torch.roll(x, -sign * k, dims=1) * valid[..., None])
    return torch.cat(feats, -1)


class CaTransformer(nn.Module):
    """``channels`` 3: Cartesian coordinates (nm) with geometric features (offsets, distances, shells);
    other ``channels`` (internal coordinates, :mod:`panflow_protein.internal`): each residue's channels
    beside those of its sequence neighbours ``i ± 1..4``, no distances (the channels are not positions)."""

    def __init__(self, length: int, dim: int = 128, depth: int = 4, heads: int = 4, shells: int = 16,
                 max_radius: float = 2.0, seq_dim: int = 0, mlp_ratio: float = 4.0, channels: int = 3,
                 conditions: tuple = ()):
        super().__init__()
        self.length, self.channels, self.geometric = length, channels, channels == 3
        in_dim = (3 + 4 * len(OFFSETS) * 2 + shells) if self.geometric else channels * (1 + 2 * len(OFFSETS))
        self.register_buffer("centres", torch.linspace(0.0, max_radius, shells), persistent=False)
        self.width = max_radius / shells * 1.5
        self.inp = nn.Sequential(nn.Linear(in_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.time_tok = TimeEmbedding(dim)
        self.time_glob = TimeEmbedding(dim)
        self.len_emb = nn.Sequential(nn.Linear(2, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.pos_start = nn.Embedding(length, dim)   # residue index from the N terminus
        self.pos_end = nn.Embedding(length, dim)     # ... and from the C terminus (the mask gives the length)
        self.seq = nn.Linear(seq_dim, dim) if seq_dim else None
        self.seq_null = nn.Parameter(torch.zeros(dim)) if seq_dim else None
        globals_ = tuple(c for c in conditions if c.name not in PER_RESIDUE)  # e.g. a shortcut step size
        self.globals = ConditionEmbedding(globals_, dim) if globals_ else None
        self.rotary = Rotary(dim // heads)
        self.blocks = nn.ModuleList(AdaLNBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.out = AdaLNOutput(dim, channels)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        cond = cond if isinstance(cond, dict) else {}
        b, length, _ = x.shape
        mask = residue_mask(cond, b, length, x.device)
        mf = mask.to(x.dtype)
        t = t.reshape(b, 1).expand(b, length) if t.dim() == 1 else t.reshape(b, length)
        if self.geometric:
            feats = torch.cat([x * mf[..., None], local_features(x, mask),
                               shell_counts(x, mask, self.centres.to(x.dtype), self.width)], -1)
        else:
            feats = torch.cat([x * mf[..., None], neighbour_channels(x, mask)], -1)
        idx = torch.arange(length, device=x.device)
        n = mf.sum(1)
        from_end = (n.long()[:, None] - 1 - idx[None]).clamp(0, length - 1)
        h = self.inp(feats) + self.time_tok(t) + self.pos_start(idx)[None] + self.pos_end(from_end)
        if self.seq is not None:
            s = cond.get("seq")
            e = self.seq(s.to(x.dtype)) if s is not None else self.seq_null.expand(b, length, -1)
            null = cond.get("seq.null")
            if s is not None and null is not None:
                e = torch.where(null.reshape(b, 1, 1).bool(), self.seq_null.expand_as(e), e)
            h = h + e
        t_mean = (t * mf).sum(1) / n.clamp_min(1)
        c = self.time_glob(t_mean) + self.len_emb(torch.stack([n / self.length, torch.log(n.clamp_min(1)) / math.log(512)], 1))
        if self.globals is not None:
            c = c + self.globals(cond, b, x.device).to(c.dtype)
        rot = self.rotary(length)
        for blk in self.blocks:
            h = blk(h, c, key_padding=mask, rotary=rot)
        return self.out(h, c) * mf[..., None]


def fits(spec: DataSpec) -> bool:
    """Residue tokens ``[L, 3]`` (Cartesian) or ``[L, 5]`` (internal coordinates)."""
    return spec.kind == "continuous" and len(spec.shape) == 2 and spec.shape[1] in (3, CHANNELS)


def consumes(cond, spec: DataSpec) -> bool:
    """Per-residue ``residues [L]`` (mask) and ``seq [L, D]``; any other label or one-axis tensor
    condition as a global vector (added to the adaLN modulation)."""
    length = spec.shape[0]
    if cond.name in PER_RESIDUE:
        return (cond.name == "residues" and cond.shape == (length,)) or (cond.name == "seq" and cond.shape[:1] == (length,))
    return consumes_labels_and_vectors(cond, spec)


def build(spec: DataSpec, dim: int = 128, depth: int = 4, heads: int = 4, shells: int = 16,
          max_radius: float = 2.0, mlp_ratio: float = 4.0) -> CaTransformer:
    seq = next((c for c in spec.conditions if c.name == "seq"), None)
    return CaTransformer(spec.shape[0], dim, depth, heads, shells, max_radius, seq.shape[1] if seq else 0, mlp_ratio,
                         channels=spec.shape[1], conditions=tuple(spec.conditions))
