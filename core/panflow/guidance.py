"""Classifier-free guidance: ``v = v_null + w (v_cond − v_null)`` on any field.

``w = 0`` is the unconditional field, ``w = 1`` the conditional one. Outside an optional
``interval = (t_lo, t_hi)`` the conditional field (w = 1) is used (Kynkäänniemi et al. 2024).
Both branches run in one batched forward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

ModelFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def cfg_field(model_fn: ModelFn, cond: torch.Tensor, null_cond: torch.Tensor, scale: float,
              interval: tuple[float, float] | None = None):
    """A field ``f(x, t)`` guided towards ``cond`` (``[B]`` labels) against ``null_cond``."""

    def field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if scale == 1.0:
            return model_fn(x, t, cond)
        both = model_fn(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, null_cond]))
        v_c, v_u = both.chunk(2)
        w = torch.full_like(t, float(scale))
        if interval is not None:
            inside = (t >= interval[0]) & (t <= interval[1])
            w = torch.where(inside, w, torch.ones_like(w))
        w = w.reshape(-1, *([1] * (x.dim() - 1)))
        return v_u + w * (v_c - v_u)

    return field
