"""A deterministic MSE objective (``regression``): the baseline GenCast is compared against.

The network is the flow's backbone unchanged, called on a zero input at time 0 and trained to
predict the (normalised) residual itself with a mean squared error; sampling is one forward pass.
Same data, encoder, conditions, parameters and trainer as the flow model: only the loss differs.
"""

from __future__ import annotations

from typing import Any

import torch

from panflow import DataSpec, SampleOptions, SampleResult, masked_mean


class RegressionObjective:
    kind = "regression"

    def __init__(self, conditions=()):
        self.conditions = tuple(conditions)

    def draw(self, n: int, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        return {}

    def _predict(self, model, x: torch.Tensor, cond: dict) -> torch.Tensor:
        t = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        full = {**cond, **{c.name + ".null": torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
                           for c in self.conditions if c.kind == "tensor" and c.name in cond}}
        return model(torch.zeros_like(x), t, full)

    def loss(self, model, batch, rand: dict | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        out = self._predict(model, batch.x, batch.cond)
        return masked_mean((out.float() - batch.x.float()) ** 2, batch.mask)

    @torch.no_grad()
    def generate(self, model, shape: tuple[int, ...], opts: SampleOptions, cond: dict | None = None,
                 generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                 known=None, x_known=None) -> SampleResult:
        x = torch.zeros(shape, device=device)
        return SampleResult(self._predict(model, x, {k: v.to(device) for k, v in (cond or {}).items()}), 1, 1,
                            "regression")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "conditions": [c.to_json() for c in self.conditions]}


def build(spec: DataSpec, cfg=None, domain=None) -> RegressionObjective:
    return RegressionObjective(spec.conditions)


def from_json(d: dict, spec: DataSpec | None = None) -> RegressionObjective:
    return RegressionObjective(spec.conditions if spec is not None else ())
