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

from panflow import ScoreCard, bar, build_config, count_parameters, get_registry, load_run, train

from .backbone import build
from .evaluate import video_card

# what only the benchmark needs; training and sampling settings come from the plugin's presets
# (``panflow_video.plugin.PRESETS`` / ``BACKBONE_PRESETS``), the one place for those defaults
PRESETS = {
    "smoke": {"n": 8, "classifier_steps": (20, 10), "given": 2, "ends": 1},
    "quick": {"n": 96, "classifier_steps": (300, 150), "given": 3, "ends": 2},
    "small": {"n": 256, "classifier_steps": (600, 300), "given": 3, "ends": 2},
    "full": {"n": 2000, "classifier_steps": (3000, 2000), "given": 4, "ends": 4},
}


def matched_width(spec, options: dict) -> int:
    """Channels of the per-frame network whose parameter count is closest to the space-time one's."""
    target = count_parameters(build(spec, **options))
    best = min(range(options["channels"], 2 * options["channels"] + 1),
               key=lambda c: abs(count_parameters(build(spec, **{**options, "channels": c, "temporal": False})) - target))
    return best


def _train(preset: str, root: Path, name: str, seed: int, backbone: str, options: dict | None) -> tuple:
    """Train one model through ``panflow.train`` on the plugin's ``preset`` (``options`` None: the
    backbone's preset options)."""
    over = {"train.progress": False, "train.seed": seed, "data.seed": seed,
            **({"model.options": options} if options is not None else {})}
    cfg = build_config("video", preset, overrides=over, backbone=backbone)
    cfg.train.log_every = max(1, cfg.train.steps // 6)
    t0 = time.perf_counter()
    out = train(cfg, root / name)
    wall = time.perf_counter() - t0
    run = load_run(out, device=cfg.train.device)
    return run, {"train_s": wall, "params": count_parameters(run.model), "backbone": backbone,
                 "options": dict(cfg.model.options)}


def run_benchmark(preset: str, out_dir=None, seed: int = 0) -> ScoreCard:
    p = PRESETS[preset]
    prev = torch.get_num_threads()
    if build_config("video", preset).train.device == "cpu":  # one thread: the CPU presets' timings
        torch.set_num_threads(1)
    try:
        return _run(p, preset, seed)
    finally:
        torch.set_num_threads(prev)


def _run(p: dict, preset: str, seed: int) -> ScoreCard:
    get_registry()
    with tempfile.TemporaryDirectory(prefix="panflow-video-bench-") as tmp:
        run, info = _train(preset, Path(tmp), "st", seed, "st-unet", None)
        options = {k: v for k, v in info["options"].items() if k != "temporal"}
        width = matched_width(run.spec, options)
        base, binfo = _train(preset, Path(tmp), "frame", seed, "frame-unet", {**options, "channels": width})
        bundle = run.load_data()
        t0 = time.perf_counter()
        card = video_card(run, bundle, p["n"], seed, p["given"], p["ends"], baseline=base,  # each run's [sample]
                          classifier_steps=p["classifier_steps"])
        eval_s = time.perf_counter() - t0
    _bars(card, p["given"])
    tr = run.cfg.train
    card.extra.update({"preset": preset, "training": {"model": info, "per_frame": binfo, "steps": tr.steps,
                                                      "batch_size": tr.batch_size, "eval_s": eval_s,
                                                      "torch_threads": torch.get_num_threads()},
                       "recipe": bundle.meta["recipe"], "n_train": bundle.meta["n_train"], "n_val": bundle.meta["n_val"]})
    card.notes.append(f"The per-frame model has {binfo['params']:,} parameters (width {binfo['options']['channels']}), the "
                      f"(2+1)-D model {info['params']:,}; both train {tr.steps} steps × {tr.batch_size} clips with the "
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
