"""The robot score card of a trained run.

On the embedded point-mass task it is closed loop (:func:`panflow_robot.policy.rollout`):

- **floor** — the scripted expert on an independent set of starts: the sampling noise of every
  closed-loop number at this N (its mode gap is what two expert draws differ by);
- **baseline** — the mean of the expert's two modes (the policy that MSE regression converges to);
- **model** — the run as a receding-horizon policy at the run's NFE;
- **oracle** — the scripted expert on the same starts as the model.

On user data (no simulator) it is open loop: chunk MSE on held-out windows for the training-mean
chunk (baseline) and the model.
"""

from __future__ import annotations

import numpy as np
import torch

from panflow import Row, Run, ScoreCard

from .env import PointMassEnv, ScriptedExpert
from .known import committed_mask
from .policy import RolloutResult, _finish, expert_result, rollout


def row_metrics(res: RolloutResult, oracle: RolloutResult | None = None) -> dict[str, float]:
    m = res.metrics()
    if oracle is not None:
        m["mode_gap"] = abs(m["left_of_passed"] - oracle.metrics()["left_of_passed"])
    return m


def mean_of_modes(episodes: int, seed: int) -> RolloutResult:
    """The analytical mode-averaging policy: the mean of the expert's left and right actions."""
    import time

    t0 = time.perf_counter()
    env = PointMassEnv(episodes, seed=seed)
    p = env.reset()
    left, right = ScriptedExpert(episodes, seed=seed, noise=0.0), ScriptedExpert(episodes, seed=seed, noise=0.0)
    left.via[:, 1], right.via[:, 1] = np.abs(left.via[:, 1]), -np.abs(right.via[:, 1])
    while not env.done.all():
        p = env.step(0.5 * (left.act(p) + right.act(p)))
    return _finish(env, [], [], t0)


def closed_loop_card(run: Run, n: int, seed: int) -> ScoreCard:
    eval_seed = 10_000 + seed
    card = ScoreCard("robot")
    oracle = expert_result(n, eval_seed)
    floor = expert_result(n, eval_seed + 1)
    card.rows.append(Row("floor", row_metrics(floor, oracle), {"n": n, "seed": eval_seed + 1, "wall_s": floor.wall_s,
                                                                "what": "scripted expert, independent starts"}))
    base = mean_of_modes(n, eval_seed)
    card.rows.append(Row("baseline", row_metrics(base, oracle), {"n": n, "seed": eval_seed, "wall_s": base.wall_s,
                                                                  "what": "mean of the expert's two modes"}))
    nfe = int(run.cfg.sample.nfe)
    res = rollout(run, n, nfe=nfe, seed=eval_seed, solver=run.cfg.sample.solver)
    card.rows.append(Row("model", row_metrics(res, oracle), {"n": n, "nfe": nfe, "solver": run.cfg.sample.solver,
                                                              "guidance": 1.0, "seed": eval_seed, "wall_s": res.wall_s}))
    card.rows.append(Row("oracle", row_metrics(oracle, oracle), {"n": n, "seed": eval_seed, "wall_s": oracle.wall_s,
                                                                  "what": "scripted expert, same starts"}))
    card.notes.append("Closed loop: success = goal reached without touching the obstacle within 60 steps; "
                      "success_lo95/hi95 are 95 % Wilson intervals; left_of_passed = fraction passing left among "
                      "episodes that passed the obstacle; mode_gap = |left_of_passed − oracle's|; jerk = "
                      "|Δ²a|/dt² of the executed velocity commands at re-planning boundaries vs inside chunks.")
    return card


def open_loop_card(run: Run, n: int, seed: int) -> ScoreCard:
    bundle = run.load_data()
    val, train = bundle.val.index(slice(0, n)), bundle.train
    m = len(val)
    h = run.contract["dataset"]["horizons"]
    known = committed_mask(m, val.x.shape[1], int(h["overlap"]))
    gen, setup = run.generate(m, run.options(), cond={"obs": val.cond["obs"]}, known=known, x_known=val.x, seed=seed)
    free = ~known
    mse = lambda x: float(((x - val.x) ** 2)[free].mean())
    card = ScoreCard("robot")
    mean_chunk = train.x.mean(0, keepdim=True).expand_as(val.x)
    card.rows.append(Row("baseline", {"chunk_mse": mse(torch.where(known[..., None], val.x, mean_chunk))},
                         {"n": m, "seed": seed, "what": "training-mean chunk"}))
    card.rows.append(Row("model", {"chunk_mse": mse(gen.x)}, setup))
    card.notes.append("User data has no simulator: open-loop chunk MSE (raw units) over the free steps of held-out "
                      "windows, with the committed overlap given. A multimodal expert makes even a perfect sampler's "
                      "MSE nonzero; read it as a sanity check, not a policy score.")
    return card


def reacher_card(run: Run, n: int, seed: int) -> ScoreCard:
    from .reacher import card_rows

    card = ScoreCard("robot")
    card.rows += card_rows(run, n, seed)
    card.notes.append("MuJoCo Reacher-v5: success = fingertip within 2 cm of the target after 50 steps.")
    return card


#: the score card of a run, by the task it was trained on (user data has none: open loop)
CARDS = {"pointmass": closed_loop_card, "reacher": reacher_card}


def evaluate(run: Run, n: int = 200, seed: int = 0, **_) -> ScoreCard:
    return CARDS.get(run.contract["dataset"].get("task"), open_loop_card)(run, n, seed)
