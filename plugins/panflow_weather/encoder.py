"""Normalisation statistics: the flow runs on residuals ``(x − μ_r) / σ_r`` per channel (GenCast).

``fit`` computes, on the training samples only, per-channel mean/std of the one-step residuals
``x`` (masked cells excluded), of the states in ``prev`` and of each ``context`` channel. All of
them are in ``config()`` (the checkpoint contract); the state and context statistics are also
written into the model spec's conditions (``ConditionSpec.normalisation``), where the backbone
reads them to normalise its inputs.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import torch

from panflow import ConfigError, DataSpec, Encoder, Samples


def _stats(x: torch.Tensor, dims: tuple[int, ...], mask: torch.Tensor | None = None) -> tuple[list, list]:
    x = x.double()
    m = torch.ones_like(x) if mask is None else mask.double().expand_as(x)
    n = m.sum(dims).clamp_min(1)
    mean = (x * m).sum(dims) / n
    var = (((x - mean.reshape([-1 if d not in dims else 1 for d in range(x.dim())])) ** 2) * m).sum(dims) / n
    std = var.sqrt()
    std = torch.where(std > 1e-8 * mean.abs().clamp_min(1.0), std, torch.ones_like(std))
    return mean.tolist(), std.tolist()


class WeatherEncoder(Encoder):
    def __init__(self, stats: dict[str, Any] | None = None):
        self.stats = stats or {}

    def fit(self, train: Samples) -> None:
        res_mean, res_std = _stats(train.x, (0, 2, 3), train.mask)
        prev = train.cond["prev"]
        st_mean, st_std = _stats(prev.flatten(0, 1), (0, 2, 3))
        ctx_mean, ctx_std = _stats(train.cond["context"], (0, 2, 3))
        self.stats = {"residual_mean": res_mean, "residual_std": res_std, "state_mean": st_mean, "state_std": st_std,
                      "context_mean": ctx_mean, "context_std": ctx_std}

    def _ms(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.stats:
            raise ConfigError("the weather encoder was used before fit()")
        m = torch.tensor(self.stats["residual_mean"], dtype=z.dtype, device=z.device).reshape(-1, 1, 1)
        s = torch.tensor(self.stats["residual_std"], dtype=z.dtype, device=z.device).reshape(-1, 1, 1)
        return m, s

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        m, s = self._ms(x)
        return (x - m) / s

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        m, s = self._ms(z)
        return z * s + m

    def model_spec(self, raw: DataSpec) -> DataSpec:
        norm = {"prev": ("state_mean", "state_std"), "context": ("context_mean", "context_std")}
        conds = tuple(dataclasses.replace(c, normalisation=json.dumps(
            {"type": "zscore", "mean": self.stats[norm[c.name][0]], "std": self.stats[norm[c.name][1]]}))
            if c.name in norm and self.stats else c for c in raw.conditions)
        return dataclasses.replace(raw, conditions=conds)

    def config(self) -> dict[str, Any]:
        return {"type": "weather-residual", **self.stats}


def make_encoder(options: dict[str, Any]) -> WeatherEncoder:
    if options:
        raise ConfigError(f"the weather encoder takes no options, got {sorted(options)}")
    return WeatherEncoder()


def load_encoder(config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> WeatherEncoder:
    if config.get("type") != "weather-residual":
        raise ConfigError(f"unknown weather encoder type {config.get('type')!r} in the checkpoint")
    return WeatherEncoder({k: v for k, v in config.items() if k != "type"})
