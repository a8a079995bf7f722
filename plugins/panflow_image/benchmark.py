"""The image benchmark on the embedded digits: train UNet and DiT through ``panflow.train``,
then FD / KID / precision / recall / conditional accuracy / memorisation against NFE, solver
and guidance scale, beside the floor and the Gaussian baseline."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from panflow import (
    FIXED_STEP_COST,
    Row,
    ScoreCard,
    bar,
    build_config,
    load_run,
    loss_curve,
    progress_enabled,
    progress_stage,
    train,
)

from .evaluate import notes, real_rows, reference, row_metrics

PREVIEW_N = 200  # images per source kept for report.html's grids
PRESETS = {
    "smoke": {"backbones": ["unet"], "nfes": [1, 2], "solvers": ["euler", "heun"], "guidances": [1.0, 2.0],
              "n": 64, "classifier_epochs": 2, "overrides": {}},
    # quick: the README's first run — the UNet alone, a short sweep, a classifier trained for fewer epochs
    "quick": {"backbones": ["unet"], "nfes": [2, 4, 8], "solvers": ["euler", "heun"], "guidances": [1.0],
              "n": 250, "classifier_epochs": 30, "overrides": {}},
    "small": {"backbones": ["unet", "dit"], "nfes": [1, 2, 4, 8, 16, 32], "solvers": ["euler", "midpoint", "heun", "rk4"],
              "guidances": [1.0, 1.5, 2.0, 3.0], "n": None, "classifier_epochs": 100,
              "overrides": {"dit": {"train.steps": 6000}}},  # the transformer needs more steps than the UNet
    "full": {"backbones": ["unet", "dit"], "nfes": [1, 2, 4, 8, 16, 32], "solvers": ["euler", "midpoint", "heun", "rk4"],
             "guidances": [1.0, 1.5, 2.0, 3.0], "n": None, "classifier_epochs": 100, "overrides": {}},
}


def _train(backbone: str, preset: str, root: Path, seed: int, extra: dict | None = None):
    cfg = build_config("image", preset, backbone=backbone,
                       overrides={"train.seed": seed, "train.progress": progress_enabled(), **(extra or {})})
    t0 = time.perf_counter()
    run_dir = train(cfg, root / backbone)
    wall = time.perf_counter() - t0
    return load_run(run_dir, device="auto"), wall, cfg


def _sweep(run, ref, p, seed):
    rows = []
    configs = [(s, k, 1.0) for s in p["solvers"] for k in p["nfes"] if k % FIXED_STEP_COST[s] == 0 and k >= FIXED_STEP_COST[s]]
    best_nfe = max(p["nfes"])
    configs += [("heun", best_nfe, w) for w in p["guidances"] if w != 1.0]
    pbar = progress_stage("image sample sweep + evaluation", len(configs))
    for solver, nfe, w in configs:
        pbar.update(1)
        gen, setup = run.generate(len(ref.ref), run.options(solver=solver, nfe=nfe, guidance=w), labels=ref.ref.y,
                                  seed=seed)
        m = row_metrics(ref, gen.x, ref.ref.y, seed)
        rows.append({"solver": solver, "nfe": nfe, "guidance": w, "sample_s": setup["wall_s"], **m})
    pbar.close()
    return rows


def run_benchmark(preset: str, out_dir=None, seed: int = 0) -> ScoreCard:
    p = PRESETS[preset]
    root = Path(tempfile.mkdtemp(prefix="panflow-image-bench-"))
    runs = {}
    for b in p["backbones"]:
        runs[b] = _train(b, preset, root, seed, p["overrides"].get(b))
    first = runs[p["backbones"][0]][0]
    bundle = first.load_data()
    k = first.raw_spec.num_classes
    ref = reference(bundle, k, p["n"], seed, epochs=p["classifier_epochs"])
    n = len(ref.ref)
    card = ScoreCard("image", rows=real_rows(ref, bundle.train, k, seed))
    sections, sweeps, train_info = [], {}, {}
    for b, (run, wall, cfg) in runs.items():
        rows = _sweep(run, ref, p, seed)
        sweeps[b] = rows
        best = min(rows, key=lambda r: r["fd"])
        gen, setup = run.generate(n, run.options(solver=best["solver"], nfe=best["nfe"], guidance=best["guidance"]),
                                  labels=ref.ref.y, seed=seed)
        card.rows.append(Row(f"model · {b}", row_metrics(ref, gen.x, ref.ref.y, seed), setup))
        card.artifacts.update({f"{b}.model": gen.x[:PREVIEW_N], f"{b}.labels": ref.ref.y[:PREVIEW_N]})
        train_info[b] = {"train_s": wall, "s_per_step": wall / max(1, cfg.train.steps), "steps": cfg.train.steps,
                         "batch_size": cfg.train.batch_size, "params": sum(x.numel() for x in run.model.parameters()),
                         "options": cfg.model.options, "loss_curve": loss_curve(run.run_dir)}
        sections.append(_markdown(b, rows, train_info[b]))
    floor, base = card.row("floor").metrics, card.row("baseline").metrics
    acc = ref.info["val_accuracy"]
    card.bars.append(bar("reference classifier held-out accuracy (digits)", acc, ">=", 0.99))
    for b in p["backbones"]:
        m = card.row(f"model · {b}").metrics
        card.bars.append(bar(f"{b}: FD / floor FD", m["fd"] / max(floor["fd"], 1e-12), "<=", 2.0))
        card.bars.append(bar(f"{b}: conditional accuracy / classifier accuracy", m["cond_acc"] / acc, ">=", 0.9))
        card.bars.append(bar(f"{b}: memorisation rate", m["memorisation"], "<=", 0.05))
        for key, better in [("fd", "<"), ("kid", "<"), ("precision", ">"), ("recall", ">"), ("cond_acc", ">")]:
            ratio = m[key] / base[key] if base[key] else float("inf")
            card.bars.append(bar(f"{b}: {key} model / baseline", ratio, "<" if better == "<" else ">", 1.0))
    card.artifacts.update({"real.model": ref.ref.x[:PREVIEW_N], "real.labels": ref.ref.y[:PREVIEW_N]})
    card.extra.update({"sweeps": sweeps, "training": train_info, "classifier": ref.info, "n": n,
                       "markdown_sections": sections})
    card.notes += notes(ref.info)
    card.notes.append(f"N = {n} images in every row, compared with the same half of the {len(bundle.val)} held-out "
                      f"digits (the floor is the other half); seed {seed}. Model rows use the sweep's best-FD setting.")
    shutil.rmtree(root, ignore_errors=True)
    return card


def _markdown(backbone: str, rows: list[dict], info: dict) -> str:
    lines = [f"### {backbone}: quality against NFE, solver and guidance ({info['params']:,} parameters, "
             f"{info['steps']} steps x batch {info['batch_size']}, {info['s_per_step'] * 1e3:.0f} ms/step on this CPU)", "",
             "| solver | NFE | guidance | FD | KID | precision | recall | cond. acc | memorisation |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['solver']} | {r['nfe']} | {r['guidance']:g} | {r['fd']:.3f} | {r['kid']:.4f} | "
                     f"{r['precision']:.3f} | {r['recall']:.3f} | {r['cond_acc']:.3f} | {r['memorisation']:.3f} |")
    return "\n".join(lines)
