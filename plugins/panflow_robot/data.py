"""Datasets of the robot domain: the embedded point-mass demonstrations, or the user's (``--data PATH``).

Both become the same training windows (:func:`panflow_robot.episodes.windows`): ``x = chunk
[N, pred_h, act_dim]`` (raw actions) with the condition ``obs [N, obs_h, obs_dim]`` (raw
observations); the encoder normalises both.
"""

from __future__ import annotations

import numpy as np
import torch

from panflow import DataBundle, DatasetOptions, Samples

from .env import expert_demos
from .episodes import Episodes, Horizons, split_episodes, windows
from .formats import read_episodes

#: the recorded recipe of the embedded demonstrations (also written into the dataset meta)
POINTMASS_RECIPE = {"task": "pointmass", "episodes": 1000, "steps": 50, "seed": 0, "noise": 0.15,
                    "expert": "random side (p=0.5), noisy via point beside the obstacle, then the goal"}


def pointmass_episodes(n: int = POINTMASS_RECIPE["episodes"], seed: int = 0, steps: int = 50, noise: float = 0.15) -> Episodes:
    """The embedded demonstration set (deterministic in its arguments)."""
    demos = expert_demos(n, seed, steps, noise)
    return Episodes([d[0] for d in demos], [d[1] for d in demos], "<embedded pointmass>",
                    {"format": "embedded", "sides": [d[2] for d in demos]})


def to_samples(eps: Episodes, idx: np.ndarray, h: Horizons) -> Samples:
    sub = Episodes([eps.obs[i] for i in idx], [eps.actions[i] for i in idx], eps.source)
    if not len(sub):
        return Samples(torch.zeros(0, h.pred, eps.actions[0].shape[1]),
                       cond={"obs": torch.zeros(0, h.obs, eps.obs[0].shape[1])})
    o, a, _ = windows(sub, h)
    return Samples(torch.from_numpy(a), cond={"obs": torch.from_numpy(o)})


def load_demos(opts: DatasetOptions) -> DataBundle:
    """Options: ``obs_horizon``, ``pred_horizon``, ``execute``, ``overlap``; embedded: ``episodes``,
    ``steps``, ``noise``; user data: ``format``, ``obs_keys``."""
    o = dict(opts.options)
    h = Horizons.from_options(o)
    if opts.path:
        eps = read_episodes(opts.path, o)
        task = None
        recipe = {"task": None}
    else:
        recipe = {**POINTMASS_RECIPE, "episodes": int(o.get("episodes", POINTMASS_RECIPE["episodes"])),
                  "steps": int(o.get("steps", 50)),
                  "noise": float(o.get("noise", 0.15)), "seed": int(opts.seed)}
        eps = pointmass_episodes(recipe["episodes"], recipe["seed"], recipe["steps"], recipe["noise"])
        task = "pointmass"
    eps.validate(h)
    tr, va = split_episodes(len(eps), opts.val_fraction, opts.seed)
    meta = {"task": task, "horizons": h.to_json(), "source": eps.source, "recipe": recipe,
            "n_episodes": len(eps), "train_episodes": len(tr), "val_episodes": len(va),
            "format": eps.meta.get("format"), "obs_keys": eps.meta.get("obs_keys", eps.meta.get("obs_key")),
            "obs_dim": int(eps.obs[0].shape[1]), "act_dim": int(eps.actions[0].shape[1])}
    if "sides" in eps.meta:
        meta["expert_left_fraction"] = float(np.mean(np.array(eps.meta["sides"])[tr] == 1))
    return DataBundle(to_samples(eps, tr, h), to_samples(eps, va, h), meta)
