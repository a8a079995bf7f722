"""The text benchmark (``panflow bench --domains text``) with its training steps overridden, written
to ``text.json`` / ``text.md`` in the same format: for when the preset's full budget does not fit
the machine's time (the steps used are in the result and its command line).

    python benchmarks/text_headline.py --preset small --steps 2000 [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import time

import torch

from panflow import hardware, write_result
from panflow.compare import RESULT_SCHEMA
from panflow_text.benchmark import run_benchmark


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--steps", type=int, default=0, help="0 = the preset's")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--name", default="text", help="result file name (text.json / text.md)")
    ap.add_argument("--blocks", default="", help="masked models, e.g. 4:count,0:count (default: the preset's)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    blocks = tuple(int(b) if b.isdigit() else b for b in args.blocks.split(",")) if args.blocks else None
    card = run_benchmark(args.preset, args.out, args.seed, steps=args.steps or None, blocks=blocks)
    wall = time.perf_counter() - t0
    command = f"python benchmarks/text_headline.py --preset {args.preset} --steps {args.steps} --out {args.out}" \
        + (f" --name {args.name}" if args.name != "text" else "") + (f" --blocks {args.blocks}" if args.blocks else "")
    result = {"schema": RESULT_SCHEMA, "benchmark": "text", "plugin": "text", "preset": args.preset,
              "steps_override": args.steps or None, "seed": args.seed, "wall_s": wall, "command": command,
              **card.to_json(), "hardware": hardware()}
    md = f"# Benchmark `text` (preset `{args.preset}`" + (f", {args.steps} steps" if args.steps else "") \
        + f", seed {args.seed})\n\n" + card.to_markdown()
    for section in card.extra.get("markdown_sections", []):
        md += "\n" + section + "\n"
    md += f"\nWall time: {wall:.1f} s on {result['hardware']['processor']} (torch {result['hardware']['torch']}); " \
          "the machine was shared with other jobs.\n" + f"Command: `{command}`\n"
    write_result(args.out, args.name, {k: v for k, v in result.items() if k != "markdown_sections"}, md)
    print(md)


if __name__ == "__main__":
    main()
