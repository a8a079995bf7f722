"""A small MLP with sinusoidal time features for low-dimensional continuous data."""

from __future__ import annotations

import math

import torch
from torch import nn

from panflow import ConditionEmbedding, ConditionSpec, DataSpec


class TimeMLP(nn.Module):
    """``(x [B, D], t [B] or [B, D], cond) -> [B, D]``: ``depth`` hidden layers of ``width``, SiLU.

    Time features are added once per sample (``t [B]``) or once per coordinate (``t [B, D]``,
    per-element time: known coordinates sit at t = 1). Class labels and vector conditions are
    embedded into the time-feature space (:class:`panflow.ConditionEmbedding`).
    """

    def __init__(self, dim: int, width: int = 256, depth: int = 4, time_features: int = 32, num_classes: int = 0,
                 conditions: tuple[ConditionSpec, ...] = (), per_element: bool = False):
        super().__init__()
        half = time_features // 2
        self.register_buffer("freqs", torch.exp(-math.log(1000.0) * torch.arange(half) / half), persistent=False)
        self.per_element = per_element
        n_time = dim if per_element else 1
        layers: list[nn.Module] = [nn.Linear(dim + 2 * half * n_time, width), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.SiLU()]
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)
        self.label = nn.Embedding(num_classes + 1, 2 * half) if num_classes else None
        extra = tuple(c for c in conditions if c.name != "label")
        self.extra = ConditionEmbedding(extra, 2 * half * n_time) if extra else None

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict | None = None) -> torch.Tensor:
        shape = x.shape
        cond = cond or {}
        x = x.reshape(shape[0], -1)
        tt = t.reshape(shape[0], -1) if self.per_element else t.reshape(shape[0], 1)
        args = 100.0 * tt.float()[..., None] * self.freqs
        feats = torch.cat([args.cos(), args.sin()], -1).reshape(shape[0], -1).to(x.dtype)
        if self.label is not None:
            y = cond.get("label")
            if y is None:
                y = torch.full((shape[0],), self.label.num_embeddings - 1, dtype=torch.long, device=x.device)
            lab = self.label(y).to(x.dtype)
            feats = feats + (lab.repeat(1, feats.shape[1] // lab.shape[1]))
        if self.extra is not None:
            feats = feats + self.extra(cond, shape[0], x.device).to(x.dtype)
        return self.net(torch.cat([x, feats], -1)).reshape(shape)


def consumes(cond: ConditionSpec, spec: DataSpec) -> bool:
    """Labels and any tensor condition (flattened into a vector)."""
    return True


def build_mlp(spec: DataSpec, width: int = 256, depth: int = 4, time_features: int = 32) -> TimeMLP:
    per_element = bool(spec.time_shape)
    if per_element and spec.time_shape != spec.shape:
        raise ValueError(f"the MLP takes per-element time over every coordinate; got time_shape {spec.time_shape} "
                         f"for data of shape {spec.shape}")
    return TimeMLP(math.prod(spec.shape), width, depth, time_features, spec.num_classes, spec.conditions, per_element)
