"""Few-step generation on digits (sklearn 8x8, image ``small`` preset, UNet): plain flow matching,
the shortcut model (Frans et al. 2024), 2-rectified flow (Liu et al. 2023) and 2-rectified flow
trained with the U-shaped time distribution of Lee et al. 2024 at 1, 2, 4 and 64 Euler steps, scored
by the image plugin's evaluator (reference-CNN features: FD, KID, precision, recall, conditional
accuracy) against the same held-out half and its floor.

The four runs are made with the public API, exactly what the CLI does:

    panflow train image --preset small --backbone unet --out WORK/plain
    panflow train image --preset small --backbone unet --set flow.objective=shortcut --out WORK/shortcut
    panflow reflow WORK/plain --out WORK/pairs --n 20000 --solver midpoint --nfe 32
    panflow train image --preset small --backbone unet --set data.cache=WORK/pairs \\
        --set flow.coupling=reflow --set train.init_from=WORK/plain --out WORK/reflow
    panflow train image --preset small --backbone unet --set data.cache=WORK/pairs \\
        --set flow.coupling=reflow --set train.init_from=WORK/plain --set flow.time_sampler=u_shaped \\
        --out WORK/reflow_u

A run finished in WORK with the same config (or pairs of the same count from that plain run) is
reused; an unfinished or different one is an error, never scored as this one. Training cost is read from each run's
``metrics.jsonl`` (steps over the logged steps/s), so it is the run's own time whichever session
made it; the pairs' generation time from their ``cache.json``.

    OMP_NUM_THREADS=1 python benchmarks/few_step_digits.py [--preset small] [--work DIR] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from panflow import Row, SampleOptions, ScoreCard, bar, hardware, write_result
from panflow.reflow import write_pairs
from panflow.resume import differences, saved_run
from panflow.run import build_config, load_run, train
from panflow_image.evaluate import notes, real_rows, reference, row_metrics

NFES = (1, 2, 4, 64)
BAR_FD = 1.10  # the issue: FD at 1 and 2 steps within 10 % of the plain model's 64-step FD
RUNS = {"plain FM": {}, "shortcut": {"flow.objective": "shortcut"}}
REFLOWS = {"2-rectified FM": ("reflow", {}), "2-rectified FM, U-shaped t": ("reflow_u", {"flow.time_sampler": "u_shaped"})}


def train_seconds(run_dir: Path) -> float:
    """Seconds of training in a run's log: each logged interval's steps over its steps/s."""
    recs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    total, last = 0.0, 0
    for r in recs:
        total += (r["step"] - last) / r["steps_per_s"]
        last = r["step"]
    return total


def reusable(run_dir: Path, cfg) -> bool:
    """True when ``run_dir`` holds this exact config trained to its last step; False when it holds
    nothing; an unfinished or different run there is an error (never scored as this one)."""
    if not (run_dir / "checkpoints").is_dir() or not any((run_dir / "checkpoints").glob("step_*")):
        return False
    _, contract, saved = saved_run(run_dir)  # saved config with today's defaults for keys added since, as --resume
    diffs = differences(saved.to_dict(), cfg.to_dict())
    if diffs or contract.get("step") != cfg.train.steps or not (run_dir / "metrics.jsonl").exists():
        raise SystemExit(f"{run_dir} holds another or an unfinished run (step {contract.get('step')} of "
                         f"{cfg.train.steps}; config differences: {sorted(diffs)[:6]}); remove it or choose another --work")
    return True


def make_run(work: Path, name: str, preset: str, overrides: dict, log: list[str], seed: int = 0) -> Path:
    out = work / name
    cfg = build_config("image", preset, backbone="unet", overrides={**overrides, "train.device": "cpu", "train.seed": seed})
    if reusable(out, cfg):
        log.append(f"{name}: reused {out}")
        return out
    train(cfg, out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=("smoke", "small"), default="small")
    ap.add_argument("--work", default=None, help="where the four runs and the pairs live "
                    "(default runs/few_step_digits_PRESET)")
    ap.add_argument("--pairs", type=int, default=20000, help="reflow pairs to draw from the plain model")
    ap.add_argument("--n", type=int, default=None, help="images per row (default: the whole held-out half)")
    ap.add_argument("--seed", type=int, default=0, help="training seed of every run, and the pairs' and samples' seed")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results")))
    args = ap.parse_args()
    work = Path(args.work or f"runs/few_step_digits_{args.preset}")
    t_start, seed, log = time.perf_counter(), args.seed, []
    dirs = {name: make_run(work, name.split()[0], args.preset, ov, log, seed) for name, ov in RUNS.items()}
    pairs = work / "pairs"
    if not (pairs / "cache.json").exists():
        write_pairs(load_run(dirs["plain FM"], device="cpu"), pairs, args.pairs, SampleOptions("midpoint", nfe=32),
                    seed=seed)
    else:
        log.append(f"pairs: reused {pairs}")
    pinfo = json.loads((pairs / "cache.json").read_text())
    made_by = Path(pinfo["reflow"]["run"]).resolve()
    if pinfo["samples"] != args.pairs or made_by != dirs["plain FM"].resolve():
        raise SystemExit(f"{pairs} holds {pinfo['samples']} pairs of {made_by}, not {args.pairs} of "
                         f"{dirs['plain FM']}; remove it or choose another --work")
    for name, (sub, extra) in REFLOWS.items():
        dirs[name] = make_run(work, sub, args.preset, {"data.cache": str(pairs), "flow.coupling": "reflow",
                                                       "train.init_from": str(dirs["plain FM"]), **extra}, log, seed)

    plain = load_run(dirs["plain FM"], device="cpu")
    bundle = plain.load_data()
    k = plain.raw_spec.num_classes
    ref = reference(bundle, k, args.n, seed)
    card = ScoreCard("few_step_digits", rows=real_rows(ref, bundle.train, k, seed))
    fd: dict[str, dict[int, float]] = {}
    secs = {name: train_seconds(d) for name, d in dirs.items()}
    for name, d in dirs.items():
        run = plain if name == "plain FM" else load_run(d, device="cpu")
        fd[name] = {}
        for nfe in NFES:
            gen, setup = run.generate(len(ref.ref), run.options(solver="euler", nfe=nfe), labels=ref.ref.y, seed=seed)
            m = row_metrics(ref, gen.x, ref.ref.y, seed)
            fd[name][nfe] = m["fd"]
            card.rows.append(Row(f"model · {name} · {nfe} step{'s' if nfe > 1 else ''}", m,
                                 {**setup, "train_s": round(secs[name], 1)}))
    target = BAR_FD * fd["plain FM"][64]
    cost = {"shortcut": secs["shortcut"] / secs["plain FM"],
            **{name: (secs["plain FM"] + pinfo["reflow"]["wall_s"] + secs[name]) / secs["plain FM"] for name in REFLOWS}}
    for name in ("shortcut", *REFLOWS):
        for nfe in (1, 2):
            card.bars.append(bar(f"{name} FD at {nfe} step{'s' if nfe > 1 else ''}", fd[name][nfe], "<=", target,
                                 f"1.1 x plain FM's 64-step FD {fd['plain FM'][64]:.3f}"))
        card.bars.append(bar(f"{name} training time / plain FM's", cost[name], "<=", 1.2,
                             "whole runs at the same step budget" + (" + pairs" if name != "shortcut" else ""),
                             kind="speed"))
    floor = card.rows[0].metrics
    if args.preset == "smoke":
        card.notes.insert(0, "Smoke preset: plumbing only (seconds of training); the numbers mean nothing.")
    wall = time.perf_counter() - t_start
    pipeline = sum(secs.values()) + pinfo["reflow"]["wall_s"] + wall  # what one fresh, sequential run costs
    card.extra.update({"preset": args.preset, "scoring_s": wall, "fd": fd, "train_s": secs,
                       "pairs": {k2: pinfo["reflow"][k2] for k2 in ("solver", "nfe", "wall_s")} | {"n": pinfo["samples"]},
                       "cost_ratio": cost, "classifier": ref.info, "wall_s": pipeline,
                       "hardware": hardware(), "runs": {k2: str(v) for k2, v in dirs.items()}})
    card.notes += [
        f"Digits: sklearn 8x8, train {len(bundle.train)}, held-out {len(bundle.val)}; rows compare N={len(ref.ref)} "
        f"samples (drawn for the held-out half's labels) with that half; floor FD {floor['fd']:.3f} "
        f"(95 % re-split interval {floor['fd_lo']:.3f}-{floor['fd_hi']:.3f}).",
        f"All runs: image `{args.preset}` preset, UNet, {plain.cfg.train.steps} steps at batch {plain.cfg.train.batch_size}; "
        "Euler steps, EMA weights, the preset's guidance. Shortcut: `flow.objective = \"shortcut\"` from scratch, "
        "step size d = 1/NFE. 2-rectified FM: the plain model's own (noise, sample) pairs "
        f"({pinfo['samples']}, {pinfo['reflow']['solver']} {pinfo['reflow']['nfe']} NFE, "
        f"{pinfo['reflow']['wall_s']:.0f} s), then flow matching on them from the plain model's weights "
        "(`train.init_from`); the U-shaped row trains on the same pairs with "
        "`flow.time_sampler = \"u_shaped\"` (p(t) ∝ cosh(4(t − ½)), Lee et al. 2024), which spends the loss "
        "near the path's ends (one-step Euler reads the velocity at t = 0 only).",
        "Training seconds (from each run's log; other jobs shared the 2 cores, so ratios carry that noise): "
        + ", ".join(f"{n} {s:.0f} s" for n, s in secs.items()) + ".",
        *notes(ref.info), *log,
        f"Pipeline {pipeline:.0f} s (the runs' training, the pairs and this scoring, {wall:.0f} s); "
        f"{hardware()['processor']}, torch {hardware()['torch']}, {torch.get_num_threads()} thread(s).",
    ]
    md = [f"# Few-step generation: digits (image `{args.preset}`, UNet, seed {seed})", "", card.to_markdown(), "",
          f"Command: `OMP_NUM_THREADS=1 python benchmarks/few_step_digits.py --preset {args.preset}"
          + (f" --seed {seed} --out {args.out}" if seed else "") + "`"]
    write_result(args.out, "few_step_digits", {"benchmark": "few_step_digits", **card.to_json()}, "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
