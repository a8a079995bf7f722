"""Demonstration episodes, their validation, and the Diffusion Policy training windows.

An episode is ``obs [T, obs_dim]`` and ``actions [T, act_dim]`` where ``obs[t]`` is observed
before ``actions[t]`` is taken. A window at time ``t`` (see :class:`Horizons`) is

- ``obs [obs_horizon, obs_dim]``: observations ``t − obs_horizon + 1 .. t``;
- ``chunk [pred_horizon, act_dim]``: actions ``t − overlap .. t − overlap + pred_horizon − 1``, whose
  first ``overlap`` steps were already executed (the committed overlap, a known part when re-planning)
  and the next ``execute`` are executed after this plan.

Indices outside the episode repeat its first/last step (Chi et al. 2023 pad the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from panflow import DataError


@dataclass(frozen=True)
class Horizons:
    """The Diffusion Policy recipe: observe 2, predict 16, execute 8 (Chi et al. 2023)."""

    obs: int = 2
    pred: int = 16
    execute: int = 8
    overlap: int = 2

    def __post_init__(self) -> None:
        if self.obs < 1 or self.pred < 2 or self.execute < 1 or self.overlap < 0:
            raise DataError(f"horizons must be positive: {self}")
        if self.overlap + self.execute > self.pred:
            raise DataError(f"overlap {self.overlap} + execute {self.execute} exceed the prediction horizon {self.pred}")

    @classmethod
    def from_options(cls, options: dict) -> Horizons:
        return cls(int(options.get("obs_horizon", 2)), int(options.get("pred_horizon", 16)),
                   int(options.get("execute", 8)), int(options.get("overlap", 2)))

    def to_json(self) -> dict:
        return {"obs_horizon": self.obs, "pred_horizon": self.pred, "execute": self.execute, "overlap": self.overlap}


@dataclass
class Episodes:
    """A demonstration set: per-episode observation and action arrays, and where they came from."""

    obs: list[np.ndarray]
    actions: list[np.ndarray]
    source: str = "<memory>"
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.actions)

    def validate(self, horizons: Horizons) -> Episodes:
        """Raise DataError naming the episode and file for empty/short episodes, length or width
        mismatches and non-finite values; return ``self``."""
        if not self.actions:
            raise DataError(f"{self.source}: no episodes")
        a_dim, o_dim = self.actions[0].shape[-1:], self.obs[0].shape[-1:]
        for i, (o, a) in enumerate(zip(self.obs, self.actions)):
            where = f"{self.source}: episode {i}"
            if a.ndim != 2 or o.ndim != 2:
                raise DataError(f"{where}: actions and observations must be [T, dim], got {a.shape} and {o.shape}")
            if len(a) == 0:
                raise DataError(f"{where} is empty (0 steps)")
            if len(a) != len(o):
                raise DataError(f"{where}: {len(a)} actions but {len(o)} observations (lengths must match)")
            if len(a) < horizons.pred:
                raise DataError(f"{where} has {len(a)} steps, shorter than the prediction horizon {horizons.pred}")
            if a.shape[-1:] != a_dim or o.shape[-1:] != o_dim:
                raise DataError(f"{where}: action/observation width {a.shape[-1]}/{o.shape[-1]} differs from "
                                f"episode 0's {a_dim[0]}/{o_dim[0]}")
            for name, v in (("actions", a), ("observations", o)):
                bad = ~np.isfinite(v)
                if bad.any():
                    step = int(np.argwhere(bad)[0][0])
                    raise DataError(f"{where}: {name} hold NaN/inf (first at step {step})")
        return self

    def concatenated(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(obs [N, o], actions [N, a], episode_ends [E])`` as in a replay buffer."""
        ends = np.cumsum([len(a) for a in self.actions]).astype(np.int64)
        return np.concatenate(self.obs), np.concatenate(self.actions), ends


def windows(eps: Episodes, horizons: Horizons) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every training window: ``(obs [N, obs_h, o], chunk [N, pred_h, a], episode [N])``."""
    obs, chunks, ep = [], [], []
    for i, (o, a) in enumerate(zip(eps.obs, eps.actions)):
        T = len(a)
        t = np.arange(T)
        oi = np.clip(t[:, None] + np.arange(-horizons.obs + 1, 1)[None], 0, T - 1)
        ai = np.clip(t[:, None] - horizons.overlap + np.arange(horizons.pred)[None], 0, T - 1)
        obs.append(o[oi])
        chunks.append(a[ai])
        ep.append(np.full(T, i))
    return (np.concatenate(obs).astype(np.float32), np.concatenate(chunks).astype(np.float32),
            np.concatenate(ep))


def split_episodes(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Episode indices for train and validation (whole episodes, never windows of one in both)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, int(round(n * val_fraction)))) if n > 1 else 0
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
