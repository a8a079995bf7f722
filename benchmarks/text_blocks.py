"""Block diffusion against the block size: NELBO and sample quality for B = 1, 2, 4, 8, 16 and L (MDLM)
beside the AR baseline, every model with the same parameters, steps, batch and tokens.

Each masked model is trained by ``panflow.train`` with ``flow.block_size=B`` on a text preset
(``quick`` by default: a smaller model and budget than ``small``, so that six trainings fit on a
shared CPU); the AR baseline is the same transformer made causal. Samples (ancestral, one step per
token, plain and nucleus 0.9) are judged by the AR baseline. Set ``PANFLOW_TEXT_RUNS`` to keep the
trained models (``panflow bench --domains text --preset quick`` then reuses B = 4 and the AR).

    python benchmarks/text_blocks.py [--preset quick] [--steps N] [--blocks 1,2,4,8,16,0]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from panflow import hardware, write_result
from panflow_text.benchmark import runs_root, train_pair
from panflow_text.evaluate import sample_stats
from panflow_text.metrics import judge_perplexity
from panflow_text.sweep import label_of, study

SETTINGS = (("ancestral", "ancestral", 1.0, {}), ("ancestral top-p 0.9", "ancestral", 1.0, {"top_p": 0.9}),
            ("confidence noise 1", "confidence", 1.0, {"order_noise": 1.0}))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--steps", type=int, default=0, help="0 = the preset's")
    ap.add_argument("--blocks", default="1,2,4,8,16,0",
                    help="block sizes; 0 = the whole sequence (MDLM); B:count trains with the count estimator")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--nelbo-seqs", type=int, default=256)
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--name", default="text_blocks")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    blocks = tuple(int(b) if b.lstrip("-").isdigit() else b for b in args.blocks.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="panflow-text-blocks-"))
    root = runs_root(tmp, f"{args.preset}-seed{args.seed}" + (f"-{args.steps}" if args.steps else ""))
    t0 = time.perf_counter()
    pair = train_pair(args.preset, root, args.seed, args.nelbo_seqs, steps=args.steps or None, block_sizes=blocks)
    n = min(args.n, len(pair.perm) // 2)
    held, ref = pair.bundle.val.x[pair.perm[:n]], pair.bundle.val.x[pair.perm[n:2 * n]]
    v = pair.mdlm.spec.vocab_size
    held_ppl, held_h = judge_perplexity(pair.judge, held, v), sample_stats(held, ref)["unigram_entropy"]
    table = []
    for bs in blocks:
        rows = study(pair.runs[bs], bs, pair.judge, ref, n, args.seed, settings=SETTINGS)
        final = pair.curves[bs][-1]
        table.append({"block_size": bs, "model": label_of(bs), "nelbo_bits_per_byte": final["nelbo_bits_per_byte"],
                      "ratio_to_ar": final["ratio"], "train_s": pair.seconds[bs], "samples": rows})
    shutil.rmtree(tmp, ignore_errors=True)
    wall = time.perf_counter() - t0
    cfg = pair.mdlm.cfg
    ar_bpb = pair.ar_nll * pair.bpb
    md = [f"# Text: block diffusion against the block size (preset `{args.preset}`, {cfg.train.steps:,} steps, "
          f"seed {args.seed})", "",
          f"Model options {cfg.model.options}, batch {cfg.train.batch_size} x {cfg.data.options.get('seq_len')} bytes; "
          f"validation on {len(pair.val)} held-out sequences (EMA weights); samples: {n} per setting, judged by the AR "
          f"baseline (held-out text: judge ppl {held_ppl:.3f}, unigram entropy {held_h:.3f} bits). "
          f"AR baseline NLL {ar_bpb:.3f} bits/byte ({pair.ar_s:.0f} s of training).", "",
          "| model | NELBO bits/byte | / AR NLL | train s | " + " | ".join(f"{s[0]}: judge ppl ratio, H ratio"
                                                                     for s in SETTINGS) + " |",
          "|---|---|---|---|" + "---|" * len(SETTINGS)]
    for r in table:
        cells = " | ".join(f"{s['judge_ppl'] / held_ppl:.2f}, {s['unigram_entropy'] / held_h:.3f}" for s in r["samples"])
        md.append(f"| {r['model']} | {r['nelbo_bits_per_byte']:.3f} | {r['ratio_to_ar']:.3f} | {r['train_s']:.0f} | "
                  f"{cells} |")
    md += ["", "B = 1 is an autoregressive model (each masked token sees the clean tokens before it) trained through "
           "the two-stream objective; its NELBO is its exact NLL. Block diffusion (B < L) runs 2L tokens per step.",
           "", f"Wall time: {wall:.0f} s on {hardware()['processor']} (torch {hardware()['torch']}); the machine "
           "was shared with other jobs, so seconds are inflated.",
           f"Command: `python benchmarks/text_blocks.py --preset {args.preset}"
           + (f" --steps {args.steps}" if args.steps else "") + f" --blocks {args.blocks}`", ""]
    write_result(args.out, args.name, {"preset": args.preset, "steps": cfg.train.steps, "seed": args.seed,
                                       "blocks": table, "ar_bits_per_byte": ar_bpb, "held_out_judge_ppl": held_ppl,
                                       "held_out_unigram_entropy": held_h, "by_step": {str(k): c for k, c in
                                                                                       pair.curves.items()},
                                       "wall_s": wall, "model": cfg.model.options, "hardware": hardware()},
                 "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
