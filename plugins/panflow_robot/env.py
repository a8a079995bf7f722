"""The embedded task: a 2-D point mass passes a round obstacle to reach a goal (batched, numpy).

State ``p [B, 2]`` (position); action ``a [B, 2]`` a velocity command, clipped to ``|a| <= V_MAX``;
``p' = p + DT · a``. An episode succeeds when ``|p − GOAL| < GOAL_RADIUS`` before ``MAX_STEPS``
without ever entering the obstacle disc (a collision ends the episode as a failure).

The scripted expert picks a side (left = +y, right = −y) at random per episode and steers through
a noisy via point beside the obstacle, then to the goal, with smoothly correlated action noise:
demonstrations are bimodal by construction, and the average of the two modes drives straight into
the obstacle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DT = 0.1
V_MAX = 1.2
GOAL = np.array([1.0, 0.0])
GOAL_RADIUS = 0.1
OBSTACLE = np.array([0.0, 0.0])
OBSTACLE_RADIUS = 0.3
MAX_STEPS = 60
OBS_DIM = ACT_DIM = 2


def clip_speed(a: np.ndarray, vmax: float = V_MAX) -> np.ndarray:
    """Scale rows of ``a [B, 2]`` down to speed ``vmax`` where they exceed it."""
    speed = np.linalg.norm(a, axis=-1, keepdims=True)
    return a * np.minimum(1.0, vmax / np.maximum(speed, 1e-9))


@dataclass
class PointMassEnv:
    """``n`` point-mass episodes stepped together; starts drawn from ``seed`` (deterministic)."""

    n: int
    seed: int = 0

    def reset(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        self.p = np.stack([-1.0 + rng.uniform(-0.1, 0.1, self.n), rng.uniform(-0.25, 0.25, self.n)], 1)
        self.t = 0
        self.done = np.zeros(self.n, bool)
        self.success = np.zeros(self.n, bool)
        self.collided = np.zeros(self.n, bool)
        self.side = np.zeros(self.n, int)          # +1 passed left (y > 0), -1 right, 0 not yet
        self.actions: list[np.ndarray] = []         # executed (clipped) actions, one [n, 2] per step
        self.active: list[np.ndarray] = []          # which episodes were still running at each step
        return self.p.copy()

    def step(self, a: np.ndarray) -> np.ndarray:
        """Apply ``a [n, 2]`` to the episodes still running; finished ones stay where they are."""
        a = clip_speed(np.asarray(a, float))
        run = ~self.done
        self.actions.append(np.where(run[:, None], a, 0.0))
        self.active.append(run.copy())
        old = self.p.copy()
        self.p = np.where(run[:, None], self.p + DT * a, self.p)
        crossed = run & (self.side == 0) & (old[:, 0] < OBSTACLE[0]) & (self.p[:, 0] >= OBSTACLE[0])
        self.side = np.where(crossed, np.where(self.p[:, 1] >= 0, 1, -1), self.side)
        hit = run & (segment_distance(old, self.p, OBSTACLE) < OBSTACLE_RADIUS)
        arrived = run & ~hit & (np.linalg.norm(self.p - GOAL, axis=1) < GOAL_RADIUS)
        self.collided |= hit
        self.success |= arrived
        self.t += 1
        self.done |= hit | arrived | (self.t >= MAX_STEPS)
        return self.p.copy()


def segment_distance(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Distance from point ``c [2]`` to each segment ``a[i] → b[i]`` (``[B, 2]`` each)."""
    d = b - a
    L2 = np.maximum((d * d).sum(1), 1e-12)
    u = np.clip(((c - a) * d).sum(1) / L2, 0.0, 1.0)
    return np.linalg.norm(a + u[:, None] * d - c, axis=1)


class ScriptedExpert:
    """The two-mode expert for ``n`` episodes: ``act(p) -> a``; ``side [n]`` is +1 (left) or −1 (right)."""

    def __init__(self, n: int, seed: int = 0, noise: float = 0.15):
        rng = np.random.default_rng(seed + 1_000_003)
        self.rng = rng
        self.side = np.where(rng.random(n) < 0.5, 1, -1)
        self.via = np.stack([rng.uniform(-0.05, 0.1, n), self.side * (OBSTACLE_RADIUS + rng.uniform(0.2, 0.35, n))], 1)
        self.speed = rng.uniform(0.8, 1.1, n)
        self.noise_scale = noise
        self.noise = np.zeros((n, 2))
        self.passed = np.zeros(n, bool)

    def act(self, p: np.ndarray) -> np.ndarray:
        self.passed |= p[:, 0] >= self.via[:, 0] - 0.1
        target = np.where(self.passed[:, None], GOAL, self.via)
        d = target - p
        dist = np.linalg.norm(d, axis=1, keepdims=True)
        speed = np.minimum(self.speed[:, None], dist / DT)      # slow down onto the goal
        self.noise = 0.85 * self.noise + self.noise_scale * np.sqrt(1 - 0.85 ** 2) * self.rng.standard_normal(self.noise.shape)
        a = d / np.maximum(dist, 1e-9) * speed + self.noise * (dist > 0.15)
        return clip_speed(a)


def expert_demos(n: int, seed: int = 0, steps: int = 50, noise: float = 0.15) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """``n`` expert demonstrations of ``steps`` steps (the expert holds at the goal once there).

    Returns ``(obs [steps, 2], actions [steps, 2], side)`` per episode; ``obs[t]`` is the position
    before ``actions[t]``. Only collision-free demonstrations are kept (the noise is small, so
    nearly all are), drawing more episodes as needed; the result depends only on ``(n, seed)``.
    """
    out: list[tuple[np.ndarray, np.ndarray, int]] = []
    batch_seed = seed
    while len(out) < n:
        env = PointMassEnv(n, seed=batch_seed)
        p = env.reset()
        ex = ScriptedExpert(n, seed=batch_seed, noise=noise)
        obs, act, hit = [], [], np.zeros(n, bool)
        for _ in range(steps):
            a = ex.act(p)
            obs.append(p.copy())
            act.append(a)
            nxt = p + DT * a
            hit |= segment_distance(p, nxt, OBSTACLE) < OBSTACLE_RADIUS
            p = nxt
        o, a = np.stack(obs, 1), np.stack(act, 1)
        for i in range(n):
            if not hit[i] and len(out) < n:
                out.append((o[i].astype(np.float32), a[i].astype(np.float32), int(ex.side[i])))
        batch_seed += 7919
    return out


def expert_rollout(n: int, seed: int) -> PointMassEnv:
    """Run the scripted expert closed loop in the evaluation env (the oracle row)."""
    env = PointMassEnv(n, seed=seed)
    p = env.reset()
    ex = ScriptedExpert(n, seed=seed)
    while not env.done.all():
        p = env.step(ex.act(p))
    return env
