"""The video benchmark on the embedded moving digits: the (2+1)-D flow model against the same network
without cross-frame layers (a per-frame image model widened to the same parameter count), trained
with identical data, steps and known-frame tasks, and against copy-the-last-frame (see
:mod:`.evaluate` for the rows). Both models go through ``panflow.train`` and ``panflow.load_run``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from panflow import SampleOptions, ScoreCard, bar, build_config, count_parameters, get_registry, load_run, train

from .backbone import build
from .evaluate import video_card

PRESETS = {
    "smoke": {"base": "smoke", "steps": 3, "batch": 8, "recipe": "smoke", "channels": 8, "mults": [1, 2], "heads": 2,
              "n": 8, "solver": "euler", "nfe": 2, "classifier_steps": (20, 10), "given": 2, "ends": 1, "ema": 0.9},
    "quick": {"base": "small", "steps": 300, "batch": 16, "recipe": "quick", "channels": 16, "mults": [1, 2, 2],
              "heads": 4, "n": 128, "solver": "euler", "nfe": 8, "classifier_steps": (300, 150), "given": 3, "ends": 2,
              "ema": 0.99},
    "small": {"base": "small", "steps": 1000, "batch": 16, "recipe": "small", "channels": 16, "mults": [1, 2, 2],
              "heads": 4, "n": 256, "solver": "heun", "nfe": 12, "classifier_steps": (600, 300), "given": 3, "ends": 2,
              "ema": 0.995},
    "full": {"base": "full", "steps": 100_000, "batch": 64, "recipe": "full", "channels": 96, "mults": [1, 2, 2, 2],
             "heads": 8, "n": 2000, "solver": "heun", "nfe": 32, "classifier_steps": (3000, 2000), "given": 4, "ends": 4,
             "ema": 0.9999},
}


def matched_width(spec, options: dict) -> int:
    """Channels of the per-frame network whose parameter count is closest to the space-time one's."""
    target = count_parameters(build(spec, **options))
    best = min(range(options["channels"], 2 * options["channels"] + 1),
               key=lambda c: abs(count_parameters(build(spec, **{**options, "channels": c, "temporal": False})) - target))
    return best


def _train(p: dict, root: Path, name: str, seed: int, backbone: str, options: dict) -> tuple:
    over = {"train.steps": p["steps"], "train.batch_size": p["batch"], "train.progress": False, "train.seed": seed,
            "data.seed": seed, "data.options": {"recipe": p["recipe"]}, "model.options": options,
            "train.log_every": max(1, p["steps"] // 6), "train.ema_decay": p["ema"], "train.ema_warmup": True,
            "sample.solver": p["solver"], "sample.nfe": p["nfe"]}
    if p["base"] != "full":
        over["train.device"] = "cpu"
    cfg = build_config("video", p["base"], overrides=over, backbone=backbone)
    t0 = time.perf_counter()
    out = train(cfg, root / name)
    wall = time.perf_counter() - t0
    run = load_run(out, device="cpu" if p["base"] != "full" else "auto")
    return run, {"train_s": wall, "params": count_parameters(run.model), "backbone": backbone, "options": options}


def run_benchmark(preset: str, out_dir=None, seed: int = 0) -> ScoreCard:
    p = PRESETS[preset]
    prev = torch.get_num_threads()
    if p["base"] != "full":
        torch.set_num_threads(1)
    try:
        return _run(p, preset, seed)
    finally:
        torch.set_num_threads(prev)


def _run(p: dict, preset: str, seed: int) -> ScoreCard:
    get_registry()
    options = {"channels": p["channels"], "mults": p["mults"], "heads": p["heads"]}
    with tempfile.TemporaryDirectory(prefix="panflow-video-bench-") as tmp:
        run, info = _train(p, Path(tmp), "st", seed, "st-unet", options)
        width = matched_width(run.spec, options)
        base, binfo = _train(p, Path(tmp), "frame", seed, "frame-unet", {**options, "channels": width})
        bundle = run.load_data()
        t0 = time.perf_counter()
        card = video_card(run, bundle, p["n"], seed, p["given"], p["ends"], baseline=base,
                          opts=SampleOptions(p["solver"], nfe=p["nfe"]), classifier_steps=p["classifier_steps"])
        eval_s = time.perf_counter() - t0
    _bars(card, p["given"])
    card.extra.update({"preset": preset, "training": {"model": info, "per_frame": binfo, "steps": p["steps"],
                                                      "batch_size": p["batch"], "eval_s": eval_s,
                                                      "torch_threads": torch.get_num_threads()},
                       "recipe": bundle.meta["recipe"], "n_train": bundle.meta["n_train"], "n_val": bundle.meta["n_val"]})
    card.notes.append(f"The per-frame model has {binfo['params']:,} parameters (width {binfo['options']['channels']}), the "
                      f"(2+1)-D model {info['params']:,}; both train {p['steps']} steps × {p['batch']} clips with the "
                      "same known-frame tasks (video-tasks sampler).")
    return card


def _bars(card: ScoreCard, given: int) -> None:
    """The issue's bars: ratios to the floor, the real clips and both baselines."""
    fl, mod = card.row("floor").metrics, card.row("model").metrics
    pf, cl = card.row("baseline · per-frame model").metrics, card.row("baseline · copy-last-frame").metrics
    card.bars.append(bar("per-frame FD / floor", mod["frame_fd"] / max(fl["frame_fd"], 1e-12), "<=", 2.0,
                         f"floor {fl['frame_fd']:.4g}"))
    card.bars.append(bar("identity consistency / real", mod["identity"] / fl["identity"], ">=", 0.9,
                         f"real {fl['identity']:.4f}"))
    for name, row in (("per-frame model", pf), ("copy-last-frame", cl)):
        card.bars.append(bar(f"speed W1 / {name} speed W1", mod["speed_w1"] / max(row["speed_w1"], 1e-12), "<", 1.0,
                             f"{name} {row['speed_w1']:.4g}, exact-physics floor {fl['speed_w1']:.3g}"))
    hs = sorted(int(k.split("@")[1]) for k in mod if k.startswith("pred_mse@"))
    worst = max(mod[f"pred_mse@{h}"] / cl[f"pred_mse@{h}"] for h in hs)
    card.bars.append(bar("worst prediction MSE / copy-last MSE over horizons", worst, "<", 1.0,
                         ", ".join(f"h{h}: {mod[f'pred_mse@{h}'] / cl[f'pred_mse@{h}']:.3f}" for h in hs)))
    card.bars.append(bar("clip FD / per-frame model clip FD", mod["clip_fd"] / max(pf["clip_fd"], 1e-12), "<", 1.0))
