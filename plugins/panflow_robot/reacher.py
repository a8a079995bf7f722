"""The second task, in a real physics engine: MuJoCo ``Reacher-v5`` through gymnasium (headless, state obs).

The 2-link planar arm must bring its fingertip onto a random target. Every target has two inverse-
kinematics solutions (elbow up, elbow down); the scripted expert picks one at random per episode and
drives the joints there with a PD controller (noisy gains, correlated action noise), so the
demonstrations are bimodal in joint space. The mean of the two solutions is the straight arm
pointing at the target, which overshoots it: the mode-averaging failure again, with real dynamics.

Observations are gymnasium's 10-D state (cos/sin of the joints, target, joint velocities, fingertip −
target); actions are the two joint torques in [−1, 1]. Success: fingertip within 2 cm of the target
at the end of the 50-step episode.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

from panflow import ContractError, DataBundle, DatasetOptions, Row, Run

from .episodes import Episodes, Horizons, split_episodes
from .metrics import wilson

L1, L2 = 0.1, 0.11
STEPS = 50
SUCCESS_DIST = 0.02


def wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


def ik(target: np.ndarray, elbow_up: bool) -> np.ndarray:
    """Joint angles ``[2]`` putting the fingertip on ``target [2]`` (clipped to the reachable disc)."""
    r = np.clip(np.linalg.norm(target), 1e-6, L1 + L2 - 1e-6)
    c = np.clip((r * r - L1 * L1 - L2 * L2) / (2 * L1 * L2), -1.0, 1.0)
    q1 = np.arccos(c) * (1.0 if elbow_up else -1.0)
    q0 = np.arctan2(target[1], target[0]) - np.arctan2(L2 * np.sin(q1), L1 + L2 * np.cos(q1))
    return np.array([q0, q1])


class ReacherExpert:
    """PD control to one IK solution, chosen at random; ``act(env) -> torques [2]``."""

    def __init__(self, env, rng: np.random.Generator, noise: float = 0.1):
        u = env.unwrapped
        self.elbow_up = bool(rng.random() < 0.5)
        self.goal = ik(u.data.qpos[2:4].copy(), self.elbow_up)
        self.kp = rng.uniform(1.5, 3.0)
        self.kd = 0.05 * self.kp
        self.rng, self.noise_scale, self.noise = rng, noise, np.zeros(2)

    def act(self, env) -> np.ndarray:
        u = env.unwrapped
        self.noise = 0.8 * self.noise + self.noise_scale * 0.6 * self.rng.standard_normal(2)
        a = self.kp * wrap(self.goal - u.data.qpos[:2]) - self.kd * u.data.qvel[:2] + self.noise
        return np.clip(a, -1.0, 1.0)


def reacher_episodes(n: int = 200, seed: int = 0, noise: float = 0.1) -> Episodes:
    """``n`` expert demonstrations of 50 steps (deterministic in ``(n, seed)``)."""
    env = gym.make("Reacher-v5")
    rng = np.random.default_rng(seed)
    obs_l, act_l, modes = [], [], []
    for i in range(n):
        o, _ = env.reset(seed=seed * 100_003 + i)
        ex = ReacherExpert(env, rng, noise)
        obs, act = [], []
        for _ in range(STEPS):
            a = ex.act(env)
            obs.append(o.astype(np.float32))
            act.append(a.astype(np.float32))
            o, *_ = env.step(a)
        obs_l.append(np.stack(obs))
        act_l.append(np.stack(act))
        modes.append(int(ex.elbow_up))
    env.close()
    return Episodes(obs_l, act_l, "<embedded reacher>", {"format": "embedded", "elbow_up": modes})


def load_reacher(opts: DatasetOptions) -> DataBundle:
    """The reacher dataset (options: ``episodes``, ``noise`` and the horizons, as for pointmass)."""
    from .data import to_samples

    o = dict(opts.options)
    h = Horizons.from_options(o)
    recipe = {"task": "reacher", "env": "Reacher-v5", "episodes": int(o.get("episodes", 200)), "seed": int(opts.seed),
              "noise": float(o.get("noise", 0.1)), "expert": "random elbow up/down IK + PD (gains U(1.5, 3))"}
    eps = reacher_episodes(recipe["episodes"], recipe["seed"], recipe["noise"]).validate(h)
    tr, va = split_episodes(len(eps), opts.val_fraction, opts.seed)
    meta = {"task": "reacher", "horizons": h.to_json(), "source": eps.source, "recipe": recipe, "n_episodes": len(eps),
            "obs_dim": 10, "act_dim": 2, "expert_elbow_up_fraction": float(np.mean(np.array(eps.meta["elbow_up"])[tr]))}
    return DataBundle(to_samples(eps, tr, h), to_samples(eps, va, h), meta)


def reacher_rollout(policy, episodes: int = 200, seed: int = 10_000) -> dict[str, float]:
    """Closed loop in ``episodes`` Reacher-v5 envs stepped in lockstep.

    ``policy`` is a :class:`~panflow_robot.policy.ChunkPolicy` (re-plans every ``execute`` steps) or
    ``"expert"`` (the scripted expert on the same starts).
    """
    envs = [gym.make("Reacher-v5") for _ in range(episodes)]
    obs = [e.reset(seed=seed * 100_003 + i)[0] for i, e in enumerate(envs)]
    rng = np.random.default_rng(seed)
    experts = [ReacherExpert(e, rng) for e in envs] if policy == "expert" else None
    hist = [np.stack(obs)] * (1 if experts else policy.h.obs)
    t0, step = time.perf_counter(), 0
    while step < STEPS:
        if experts:
            plan = np.stack([ex.act(e) for ex, e in zip(experts, envs)])[:, None]
        else:
            plan = policy(np.stack(hist[-policy.h.obs:], 1))
        for k in range(plan.shape[1]):
            if step >= STEPS:
                break
            obs = [e.step(np.clip(plan[i, k], -1, 1))[0] for i, e in enumerate(envs)]
            hist.append(np.stack(obs))
            step += 1
    final = np.stack(obs)
    dist = np.linalg.norm(final[:, 8:10], axis=1)
    q1 = np.array([e.unwrapped.data.qpos[1] for e in envs])
    for e in envs:
        e.close()
    ok = int((dist < SUCCESS_DIST).sum())
    lo, hi = wilson(ok, episodes)
    return {"success": ok / episodes, "success_lo95": lo, "success_hi95": hi, "final_distance": float(dist.mean()),
            "elbow_up": float((q1 > 0).mean()), "wall_s": time.perf_counter() - t0}


def reacher_benchmark(p: dict, root, seed: int, train_fn) -> dict:
    """Train the flow policy and the MSE baseline on reacher demos; closed-loop success of both and the expert."""
    from .policy import ChunkPolicy

    n, k0 = min(p["eval"], 200), p["headline_nfe"]
    p = {**p, "steps": p.get("reacher_steps", p["steps"])}
    flow, fi = train_fn(p, root, "reacher-flow", seed, dataset="reacher")
    mse, mi = train_fn(p, root, "reacher-mse", seed, objective="regression", dataset="reacher")
    rows = {f"flow policy (NFE {k0})": reacher_rollout(ChunkPolicy(flow, nfe=k0, seed=seed), n, 10_000 + seed),
            "MSE baseline": reacher_rollout(ChunkPolicy(mse, nfe=1, seed=seed), n, 10_000 + seed),
            "expert (oracle)": reacher_rollout("expert", n, 10_000 + seed)}
    return {"rows": rows, "train": {"flow": fi, "mse": mi}, "n": n,
            "note": f"Reacher-v5 through gymnasium {gym.__version__}; {p['steps']} training steps each; success = "
                    f"fingertip within {SUCCESS_DIST * 100:.0f} cm of the target after {STEPS} steps."}


def card_rows(run: Run, n: int, seed: int) -> list[Row]:
    """Score-card rows (model, oracle) for a run trained on the reacher task."""
    from .policy import ChunkPolicy

    if run.contract["dataset"].get("task") != "reacher":
        raise ContractError("this run was not trained on the reacher task")
    nfe = int(run.cfg.sample.nfe)
    model = reacher_rollout(ChunkPolicy(run, nfe=nfe, seed=seed), n, 10_000 + seed)
    oracle = reacher_rollout("expert", n, 10_000 + seed)
    return [Row("model", model, {"n": n, "nfe": nfe, "solver": run.cfg.sample.solver, "seed": 10_000 + seed}),
            Row("oracle", oracle, {"n": n, "seed": 10_000 + seed, "what": "scripted expert, same starts"})]
