"""Min-max normalisation of actions (the data) and observations (the condition) to [-1, 1].

Statistics are fitted on the training windows and stored in the encoder config (JSON), so they are
part of the checkpoint contract: a policy normalises observations and de-normalises actions with
exactly the numbers training used (Chi et al. 2023 normalise the same way).
"""

from __future__ import annotations

import torch

from panflow import Encoder, Samples

EPS = 1e-6


class MinMax:
    """Per-feature ``[lo, hi] -> [-1, 1]`` over the last axis; constant features map to −1."""

    def __init__(self, lo: list[float], hi: list[float]):
        self.lo, self.hi = torch.tensor(lo, dtype=torch.float32), torch.tensor(hi, dtype=torch.float32)

    @classmethod
    def fit(cls, v: torch.Tensor) -> MinMax:
        flat = v.reshape(-1, v.shape[-1]).float()
        return cls(flat.min(0).values.tolist(), flat.max(0).values.tolist())

    def _span(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = self.lo.to(like.device), self.hi.to(like.device)
        return lo, (hi - lo).clamp_min(EPS)

    def encode(self, v: torch.Tensor) -> torch.Tensor:
        lo, span = self._span(v)
        return (2 * (v.float() - lo) / span - 1).to(v.dtype)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        lo, span = self._span(z)
        return ((z.float() + 1) / 2 * span + lo).to(z.dtype)

    def to_json(self) -> dict:
        return {"min": self.lo.tolist(), "max": self.hi.tolist()}


class ChunkEncoder(Encoder):
    """Actions ``x [B, pred_h, a]`` and the condition ``obs [B, obs_h, o]``, each min-max normalised."""

    def __init__(self, action: MinMax | None = None, obs: MinMax | None = None):
        self.action, self.obs = action, obs

    def fit(self, train: Samples) -> None:
        self.action = MinMax.fit(train.x)
        self.obs = MinMax.fit(train.cond["obs"])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.action.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.action.decode(z)

    def encode_cond(self, cond: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: self.obs.encode(v) if k == "obs" else v for k, v in cond.items()}

    def config(self) -> dict:
        return {"type": "ChunkEncoder", "normalisation": "minmax[-1,1]", "action": self.action.to_json(),
                "obs": self.obs.to_json()}

    @classmethod
    def from_config(cls, cfg: dict, tensors: dict | None = None) -> ChunkEncoder:
        return cls(MinMax(cfg["action"]["min"], cfg["action"]["max"]), MinMax(cfg["obs"]["min"], cfg["obs"]["max"]))
