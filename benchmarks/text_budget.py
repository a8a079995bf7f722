"""How the masked-diffusion / autoregressive gap moves with the training budget.

Trains the text ``small`` preset's two models (MDLM and the same transformer made causal) for
``--steps`` steps each — same parameters, batch, tokens and Trainer — and records validation NELBO
and AR NLL (bits per byte, EMA weights) at four points of the run. The committed ``text.json``
covers the preset's own budget; this script tests the extrapolation from it with a longer run.

    python benchmarks/text_budget.py --steps 12000 [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from pathlib import Path

from panflow import hardware, write_result
from panflow_text.benchmark import train_pair


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nelbo-seqs", type=int, default=512)
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--name", default="text_budget")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="panflow-text-budget-"))
    t0 = time.perf_counter()
    try:
        pair = train_pair("small", root, args.seed, args.nelbo_seqs, steps=args.steps)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    wall = time.perf_counter() - t0
    cfg = pair.mdlm.cfg
    rows = pair.curve
    md = [f"# Text: NELBO / AR NLL against the training budget ({args.steps:,} steps, seed {args.seed})", "",
          f"`small` preset models ({cfg.model.options}), batch {cfg.train.batch_size} x {pair.bundle.train.x.shape[1]} "
          f"bytes, cosine schedule over {args.steps:,} steps, EMA with warm-up; validation on "
          f"{len(pair.val)} held-out sequences. Training: MDLM {pair.mdlm_s:.0f} s, AR {pair.ar_s:.0f} s.", "",
          "| step | MDLM NELBO (bits/byte) | AR NLL (bits/byte) | ratio | target |", "|---|---|---|---|---|"]
    md += [f"| {r['step']:,} | {r['nelbo_bits_per_byte']:.3f} | {r['ar_bits_per_byte']:.3f} | {r['ratio']:.3f} | <= 1.15 |"
           for r in rows]
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        slope = (b["ratio"] - a["ratio"]) / math.log2(b["step"] / a["step"])
        md += ["", f"Change of the ratio per doubling of steps between {a['step']:,} and {b['step']:,}: {slope:+.3f}."]
    md += ["", f"Wall time: {wall:.0f} s on {hardware()['processor']} (torch {hardware()['torch']}).",
           f"Command: `python benchmarks/text_budget.py --steps {args.steps}`", ""]
    write_result(args.out, args.name, {"steps": args.steps, "seed": args.seed, "by_step": rows, "wall_s": wall,
                                       "mdlm_s": pair.mdlm_s, "ar_s": pair.ar_s, "model": cfg.model.options,
                                       "batch_size": cfg.train.batch_size, "hardware": hardware()}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
