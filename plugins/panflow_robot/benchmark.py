"""The robot benchmark: a flow policy against the same backbone trained by MSE regression, closed loop.

Both runs go through ``panflow.train`` with identical data, backbone, steps and evaluation starts
(the baseline only sets ``flow.objective = "regression"``). The flow policy is rolled out at every
NFE of the preset, with and without the committed-overlap known parts; the scripted expert is the
oracle; latency per chunk is timed at batch 1 (one robot). On the MuJoCo Reacher task (when
gymnasium + mujoco are installed) success is reported for policy, baseline and expert.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from panflow import Row, ScoreCard, bar, build_config, load_run, loss_curve, train

from .evaluate import row_metrics
from .policy import ChunkPolicy, expert_result, rollout

PREVIEW_N = 24  # closed-loop episodes per policy drawn in report.html
PRESETS = {
    "smoke": {"preset": "smoke", "steps": 30, "episodes": 24, "eval": 20, "nfes": [1, 2], "headline_nfe": 2,
              "latency_reps": 2, "transformer": False, "threads": 1, "reacher": False, "reacher_steps": 30},
    # quick: the README's first run — the flow policy and the MSE baseline only, fewer steps and episodes
    "quick": {"preset": "quick", "steps": 500, "episodes": 100, "eval": 100, "nfes": [1, 2, 4, 8], "headline_nfe": 4,
              "latency_reps": 5, "transformer": False, "threads": 1, "reacher": False, "reacher_steps": 0,
              # sized for small: 90% success, its confidence bound and the expert's mode balance need 3000 steps
              "defer": ("flow policy success", "mode balance gap", "smallest NFE keeping success")},
    "small": {"preset": "small", "steps": 3000, "episodes": 1000, "eval": 200, "nfes": [1, 2, 4, 8, 16],
              "headline_nfe": 4, "latency_reps": 20, "transformer": True, "threads": 1, "reacher": True,
              "reacher_steps": 1500},
    "full": {"preset": "full", "steps": 100_000, "episodes": 1000, "eval": 1000, "nfes": [1, 2, 4, 8, 16],
             "headline_nfe": 4, "latency_reps": 50, "transformer": True, "threads": 0, "reacher": True,
             "reacher_steps": 100_000},
}


def _train(p: dict, root: Path, name: str, seed: int, objective: str = "flow", backbone: str = "chunk-unet",
           dataset: str = "pointmass") -> tuple:
    over = {"train.steps": p["steps"], "train.progress": False, "train.seed": seed, "data.seed": seed,
            "flow.objective": objective}
    if dataset == "pointmass":
        over["data.options"] = {"episodes": p["episodes"]}
    if p["threads"]:
        over["train.device"] = "cpu"
    cfg = build_config("robot", p["preset"], overrides=over, backbone=backbone, dataset=dataset)
    t0 = time.perf_counter()
    out = train(cfg, root / name)
    wall = time.perf_counter() - t0
    run = load_run(out, device="cpu" if p["threads"] else "auto")
    return run, {"train_s": wall, "steps": p["steps"], "backbone": backbone, "objective": objective,
                 "loss_curve": loss_curve(out), "params": sum(q.numel() for q in run.model.parameters()),
                 "batch_size": cfg.train.batch_size, "model_options": cfg.model.options}


def latency(run, nfes: list[int], reps: int) -> dict[int, float]:
    """Median milliseconds per chunk at batch 1, per NFE (overlap held as in closed loop)."""
    out = {}
    obs = np.zeros((1, 2, 2), np.float32)
    for k in nfes:
        pol = ChunkPolicy(run, nfe=k)
        pol(obs)   # warm-up, and commits an overlap so later calls hold it
        for _ in range(reps):
            pol(obs)
        out[k] = 1e3 * float(np.median(pol.latency[1:]))
    return out


def run_benchmark(preset: str, out_dir, seed: int = 0) -> ScoreCard:
    p = PRESETS[preset]
    prev_threads = torch.get_num_threads()
    if p["threads"]:
        torch.set_num_threads(p["threads"])
    try:
        return _run(p, preset, seed)
    finally:
        torch.set_num_threads(prev_threads)


def _run(p: dict, preset: str, seed: int) -> ScoreCard:
    card = ScoreCard("robot")
    n, eval_seed, k0 = p["eval"], 10_000 + seed, p["headline_nfe"]
    with tempfile.TemporaryDirectory(prefix="panflow-robot-bench-") as tmp:
        root = Path(tmp)
        flow, flow_info = _train(p, root, "flow-unet", seed)
        mse, mse_info = _train(p, root, "mse-unet", seed, objective="regression")
        curves = {"flow": flow_info.pop("loss_curve"), "mse": mse_info.pop("loss_curve")}  # not into the rows' setup
        oracle = expert_result(n, eval_seed)
        floor = expert_result(n, eval_seed + 1)
        sweep = {}
        for k in p["nfes"]:
            sweep[k] = rollout(flow, n, nfe=k, seed=eval_seed)
        no_overlap = rollout(flow, n, nfe=k0, seed=eval_seed, overlap_conditioning=False)
        base = rollout(mse, n, nfe=1, seed=eval_seed)
        lat = latency(flow, p["nfes"], p["latency_reps"])
        lat_mse = latency(mse, [1], p["latency_reps"])[1]
        setup = {"n": n, "seed": eval_seed, "solver": "euler", "guidance": 1.0}
        card.rows.append(Row("floor", row_metrics(floor, oracle), {**setup, "seed": eval_seed + 1, "solver": "",
                                                                    "what": "scripted expert, independent starts"}))
        card.rows.append(Row("baseline", {**row_metrics(base, oracle), "latency_ms_per_chunk": lat_mse},
                             {**setup, "nfe": 1, "solver": "regression", "what": "chunk-unet trained by MSE", **mse_info}))
        card.rows.append(Row("model", {**row_metrics(sweep[k0], oracle), "latency_ms_per_chunk": lat[k0]},
                             {**setup, "nfe": k0, "what": "chunk-unet flow policy, committed overlap held", **flow_info}))
        card.rows.append(Row("model · no overlap conditioning", {**row_metrics(no_overlap, oracle),
                                                                 "latency_ms_per_chunk": lat[k0]},
                             {**setup, "nfe": k0, "what": "same model, each chunk sampled with nothing known"}))
        trans_info = None
        if p["transformer"]:
            trans, trans_info = _train(p, root, "flow-transformer", seed, backbone="chunk-transformer")
            curves["transformer"] = trans_info.pop("loss_curve")
            tr = rollout(trans, n, nfe=k0, seed=eval_seed)
            tr_lat = latency(trans, [k0], p["latency_reps"])[k0]
            card.rows.append(Row("model · chunk-transformer", {**row_metrics(tr, oracle), "latency_ms_per_chunk": tr_lat},
                                 {**setup, "nfe": k0, "what": "adaLN transformer flow policy", **trans_info}))
        card.rows.append(Row("oracle", row_metrics(oracle, oracle), {**setup, "solver": "",
                                                                      "what": "scripted expert, same starts"}))
        reacher = _reacher(p, root, seed) if p["reacher"] else None
    _bars(card, sweep, no_overlap, base, oracle, k0)
    card.defer(p.get("defer", ()))
    card.artifacts.update({"model": sweep[k0].positions[:PREVIEW_N], "baseline": base.positions[:PREVIEW_N]})
    card.extra.update({"settings": p, "nfe_sweep": {str(k): row_metrics(r, oracle) for k, r in sweep.items()},
                       "sweep": [{"solver": "euler", "nfe": k, **row_metrics(r, oracle)} for k, r in sorted(sweep.items())],
                       "latency_ms_per_chunk": {str(k): v for k, v in lat.items()},
                       "train": {"flow": flow_info, "mse": mse_info, "transformer": trans_info}, "loss_curves": curves,
                       "recipe": flow.contract["dataset"].get("recipe"), "horizons": flow.contract["dataset"]["horizons"],
                       "markdown_sections": [_sweep_md(sweep, lat, oracle)]})
    if reacher is not None:
        card.extra["reacher"] = reacher
        card.extra["markdown_sections"].append(_reacher_md(reacher))
    card.notes += _notes(p, sweep, no_overlap, base, k0, flow_info, mse_info)
    return card


def _bars(card, sweep, no_overlap, base, oracle, k0) -> None:
    m = row_metrics(sweep[k0], oracle)
    card.bars.append(bar(f"flow policy success (NFE {k0})", m["success"], ">=", 0.90))
    card.bars.append(bar(f"flow policy success, lower 95% Wilson bound (NFE {k0})", m["success_lo95"], ">=", 0.85))
    card.bars.append(bar("MSE baseline success", base.metrics()["success"], "<=", 0.50))
    card.bars.append(bar("mode balance gap |left − expert's left| (of episodes passing)", m["mode_gap"], "<=", 0.10))
    keep = [k for k, r in sorted(sweep.items()) if r.metrics()["success"] >= 0.90]
    smallest = keep[0] if keep else float("inf")
    card.bars.append(bar("smallest NFE keeping success >= 90%", smallest, "<=", 4,
                         "none of the swept NFEs" if not keep else f"NFE {smallest}"))
    ratio = m["jerk_boundary"] / max(no_overlap.metrics()["jerk_boundary"], 1e-12)
    card.bars.append(bar("chunk-boundary jerk, overlap held / not held", ratio, "<=", 0.70,
                         f"{m['jerk_boundary']:.3g} vs {no_overlap.metrics()['jerk_boundary']:.3g}"))


def _sweep_md(sweep, lat, oracle) -> str:
    lines = ["### Success against NFE (Euler, committed overlap held)", "",
             "| NFE | success | 95% CI | collision | left of passed | mode gap | boundary jerk | inside jerk "
             "| ms/chunk (batch 1) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for k, r in sorted(sweep.items()):
        m = row_metrics(r, oracle)
        lines.append(f"| {k} | {m['success']:.3f} | [{m['success_lo95']:.3f}, {m['success_hi95']:.3f}] | "
                     f"{m['collision']:.3f} | {m['left_of_passed']:.3f} | {m['mode_gap']:.3f} | "
                     f"{m['jerk_boundary']:.1f} | {m['jerk_inside']:.1f} | {lat[k]:.2f} |")
    return "\n".join(lines)


def _notes(p, sweep, no_overlap, base, k0, flow_info, mse_info) -> list[str]:
    m, nm = sweep[k0].metrics(), no_overlap.metrics()
    return [f"Both policies: chunk-unet {flow_info['model_options']}, {p['steps']} steps, batch "
            f"{flow_info['batch_size']}, {p['episodes']} demonstrations; flow trained in {flow_info['train_s']:.0f} s, "
            f"MSE in {mse_info['train_s']:.0f} s ({'1 thread' if p['threads'] == 1 else 'default threads'}).",
            f"Overlap conditioning: boundary jerk {m['jerk_boundary']:.1f} with vs {nm['jerk_boundary']:.1f} without "
            f"(inside chunks {m['jerk_inside']:.1f} vs {nm['jerk_inside']:.1f}); success {m['success']:.3f} vs "
            f"{nm['success']:.3f}.",
            f"MSE baseline: success {base.metrics()['success']:.3f}, collision {base.metrics()['collision']:.3f} "
            "(it predicts the mean of the expert's modes, which points at the obstacle).",
            "Closed loop: all episodes of a row start from the same seeded starts; floor = the expert on independent "
            "starts (the noise of every number at this N)."]


def _reacher(p: dict, root: Path, seed: int) -> dict | None:
    try:
        from .reacher import reacher_benchmark
    except ImportError:
        return None
    return reacher_benchmark(p, root, seed, _train)


def _reacher_md(r: dict) -> str:
    lines = ["### MuJoCo Reacher-v5 (gymnasium): closed-loop success", "",
             "| policy | success | 95% CI | mean final distance (m) | elbow-up fraction |", "|---|---|---|---|---|"]
    for name, m in r["rows"].items():
        lines.append(f"| {name} | {m['success']:.3f} | [{m['success_lo95']:.3f}, {m['success_hi95']:.3f}] | "
                     f"{m['final_distance']:.4f} | {m['elbow_up']:.3f} |")
    return "\n".join(lines + ["", r.get("note", "")])
