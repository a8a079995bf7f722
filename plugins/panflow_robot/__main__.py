"""``python -m panflow_robot export|rollout``: write demonstrations as zarr, or roll a run out closed loop.

    python -m panflow_robot export --out demos.zarr [--data PATH | --episodes 1000 --seed 0]
    python -m panflow_robot rollout RUN_DIR --episodes 200 --nfe 4 [--no-overlap]

Errors are one line (``panflow-robot: error: ...``, exit 2), like the panflow CLI.
"""

from __future__ import annotations

import argparse
import json
import sys

from panflow import PanflowError


def _export(a) -> dict:
    from .data import POINTMASS_RECIPE, pointmass_episodes
    from .episodes import Horizons
    from .formats import export_zarr, read_episodes

    n = a.episodes if a.episodes is not None else POINTMASS_RECIPE["episodes"]
    eps = read_episodes(a.data) if a.data else pointmass_episodes(n, a.seed)
    eps.validate(Horizons())
    path = export_zarr(eps, a.out)
    return {"wrote": str(path), "episodes": len(eps), "steps": int(sum(len(x) for x in eps.actions))}


def _rollout(a) -> dict:
    from panflow import load_run

    from .policy import rollout

    run = load_run(a.run, device=a.device)
    res = rollout(run, a.episodes, nfe=a.nfe, seed=a.seed, solver=a.solver,
                  overlap_conditioning=False if a.no_overlap else None)
    return {"run": a.run, "episodes": a.episodes, "nfe": a.nfe, **res.metrics()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m panflow_robot")
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="write a demonstration set as a Diffusion Policy zarr replay buffer")
    ex.add_argument("--out", required=True)
    ex.add_argument("--data", default=None, help="a zarr / robomimic HDF5 / LeRobot set (default: the embedded demos)")
    ex.add_argument("--episodes", type=int, default=None, help="embedded demos: how many (default: the recipe's)")
    ex.add_argument("--seed", type=int, default=0)
    ro = sub.add_parser("rollout", help="closed-loop episodes of the embedded point-mass task")
    ro.add_argument("run")
    ro.add_argument("--episodes", type=int, default=200)
    ro.add_argument("--nfe", type=int, default=4)
    ro.add_argument("--solver", default="euler")
    ro.add_argument("--seed", type=int, default=10_000)
    ro.add_argument("--no-overlap", action="store_true", help="do not hold the committed overlap")
    ro.add_argument("--device", default="cpu")
    a = ap.parse_args(argv)
    try:
        out = _export(a) if a.cmd == "export" else _rollout(a)
    except PanflowError as exc:
        print(f"panflow-robot: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
