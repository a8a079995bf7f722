"""Exponential moving average of weights, updated with fused foreach ops."""

from __future__ import annotations

import copy

import torch


class EMA:
    """Keeps ``shadow = decay·shadow + (1 − decay)·param`` for every floating parameter.

    With ``warmup`` the decay at update n (1-based) is ``min(decay, (1 + n) / (10 + n))``, so a
    short run's average covers roughly its last 10% of steps instead of still remembering the
    initial weights (with 0.999 and no warm-up, 37% of the average is the init after 1,000 steps).
    """

    def __init__(self, model: torch.nn.Module, decay: float = 0.999, warmup: bool = False):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay, self.warmup = decay, warmup
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self._src = [p for p in model.parameters()]
        self._dst = [p for p in self.model.parameters()]

    def decay_at(self, n: int) -> float:
        """The decay used by the ``n``-th update (1-based)."""
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, n: int | None = None) -> None:
        """Blend the live weights in; ``n`` is the update count (needed with ``warmup``)."""
        if self.warmup and n is None:
            raise ValueError("an EMA with warm-up needs the update count n")
        decay = self.decay_at(n) if n is not None else self.decay
        torch._foreach_lerp_(self._dst, [p.detach() for p in self._src], 1.0 - decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(sd)
