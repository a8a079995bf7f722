"""A trained run as a policy, and closed-loop rollouts in the embedded task.

``policy = ChunkPolicy(run, nfe=4)`` then ``actions = policy(obs_history)``: ``obs_history
[B, obs_h, obs_dim]`` raw observations give ``[B, execute, act_dim]`` raw actions to execute. With
``overlap_conditioning`` (default) the policy remembers the last ``overlap`` actions it executed and
holds them as the known first steps of the next chunk; call :meth:`ChunkPolicy.reset` between
episodes. :func:`rollout` runs the receding-horizon loop (observe, plan, execute ``execute``
steps, re-plan) for a batch of episodes and returns the closed-loop metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from panflow import ContractError, Run

from .env import MAX_STEPS, PointMassEnv, ScriptedExpert, expert_rollout
from .episodes import Horizons
from .known import committed_mask
from .metrics import boundary_jerk, mode_balance, wilson


class ChunkPolicy:
    """``policy(obs_history [B, obs_h, o]) -> actions [B, execute, a]`` (numpy or torch, raw units)."""

    def __init__(self, run: Run, nfe: int = 4, solver: str = "euler", overlap_conditioning: bool = True,
                 seed: int = 0):
        self.run = run
        self.h = Horizons.from_options(run.contract["dataset"].get("horizons", {}))
        known = run.contract["objective"].get("known", {})
        self.overlap = int(known.get("overlap", self.h.overlap)) if known.get("name") == "committed" else self.h.overlap
        if overlap_conditioning and known.get("name", "none") == "none":
            raise ContractError("this run was trained without known parts; use overlap_conditioning=False")
        self.opts = run.options(nfe=nfe, solver=solver)
        self.overlap_conditioning = overlap_conditioning
        self.seed = seed
        self.calls = 0
        self.latency: list[float] = []
        self.committed: torch.Tensor | None = None
        self.last_chunk: torch.Tensor | None = None   # the whole last plan [B, pred_h, a], raw units

    def reset(self) -> None:
        self.committed = None

    def __call__(self, obs_history) -> np.ndarray:
        obs = torch.as_tensor(np.asarray(obs_history), dtype=torch.float32)
        b = obs.shape[0]
        kw = {}
        if self.overlap_conditioning and self.committed is not None and self.overlap:
            x_known = torch.zeros(b, self.h.pred, self.committed.shape[-1])
            x_known[:, : self.overlap] = self.committed
            kw = {"known": committed_mask(b, self.h.pred, self.overlap), "x_known": x_known}
        t0 = time.perf_counter()
        chunk, _ = self.run.generate(b, self.opts, cond={"obs": obs}, seed=self.seed + self.calls, **kw)
        self.latency.append(time.perf_counter() - t0)
        self.calls += 1
        self.last_chunk = chunk.x
        start = self.h.overlap
        act = chunk.x[:, start: start + self.h.execute]
        self.committed = act[:, act.shape[1] - self.overlap:] if self.overlap else None
        return act.numpy()


@dataclass
class RolloutResult:
    """Closed-loop outcome of ``episodes`` episodes (see :func:`rollout`)."""

    success: np.ndarray
    collided: np.ndarray
    side: np.ndarray
    boundary_jerk: list[float] = field(default_factory=list)
    inside_jerk: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    positions: np.ndarray | None = None  # [episodes, T, 2] closed-loop positions (rollouts keep them; the report plots them)

    def metrics(self) -> dict[str, float]:
        n, k = len(self.success), int(self.success.sum())
        lo, hi = wilson(k, n)
        mb = mode_balance(self.side)
        out = {"success": k / n, "success_lo95": lo, "success_hi95": hi, "collision": float(self.collided.mean()),
               "left": mb["left"], "right": mb["right"], "left_of_passed": mb["left_of_passed"]}
        if self.boundary_jerk:
            out["jerk_boundary"] = float(np.mean(self.boundary_jerk))
        if self.inside_jerk:
            out["jerk_inside"] = float(np.mean(self.inside_jerk))
        if self.latency_s:
            out["latency_ms_per_chunk"] = 1e3 * float(np.median(self.latency_s))
        return out


def _finish(env: PointMassEnv, boundaries: list[int], latency: list[float], t0: float) -> RolloutResult:
    acts, active = np.stack(env.actions, 1), np.stack(env.active, 1)
    on, off = [], []
    for i in range(env.n):
        a, b = boundary_jerk(acts[i], active[i], boundaries)
        on += a
        off += b
    return RolloutResult(env.success.copy(), env.collided.copy(), env.side.copy(), on, off, latency,
                         time.perf_counter() - t0)


def rollout(run: Run, episodes: int = 200, nfe: int = 4, seed: int = 10_000, solver: str = "euler",
            overlap_conditioning: bool | None = None) -> RolloutResult:
    """Closed-loop episodes of the point-mass task with the run as a receding-horizon policy.

    Observe ``obs_h`` positions, plan a chunk, execute ``execute`` actions, re-plan; all episodes
    step together (one batched plan per re-planning step). Evaluation starts come from ``seed``
    (disjoint from the demonstration seeds). ``overlap_conditioning`` defaults to whether the run
    was trained with committed known parts.
    """
    if run.contract["dataset"].get("task") != "pointmass":
        raise ContractError("closed-loop rollouts need a run trained on the embedded pointmass task; this run was "
                            f"trained on {run.contract['dataset'].get('source', 'user data')}")
    if overlap_conditioning is None:
        overlap_conditioning = run.contract["objective"].get("known", {}).get("name", "none") != "none"
    pol = ChunkPolicy(run, nfe, solver, overlap_conditioning, seed=seed)
    env = PointMassEnv(episodes, seed=seed)
    p = env.reset()
    hist = [p] * pol.h.obs
    boundaries, t0 = [], time.perf_counter()
    while not env.done.all() and env.t < MAX_STEPS:
        boundaries.append(env.t)
        acts = pol(np.stack(hist[-pol.h.obs:], 1))
        for k in range(acts.shape[1]):
            if env.done.all():
                break
            p = env.step(acts[:, k])
            hist.append(p)
    res = _finish(env, boundaries, pol.latency, t0)
    res.positions = np.stack(hist[pol.h.obs - 1:], 1)
    return res


def expert_result(episodes: int = 200, seed: int = 10_000) -> RolloutResult:
    """The oracle: the scripted expert closed loop on the same starts (no chunks; jerk everywhere)."""
    t0 = time.perf_counter()
    env = expert_rollout(episodes, seed)
    return _finish(env, [], [], t0)


__all__ = ["ChunkPolicy", "RolloutResult", "rollout", "expert_result", "ScriptedExpert"]
