"""Cost of one training step of the image ``full`` preset (32x32, UNet and DiT), measured by
counting FLOPs with ``torch.utils.flop_counter`` and timing a step on this CPU at a small batch.

No GPU is available here, so the GPU time per step is an *estimate*: FLOPs per step divided by an
assumed sustained bf16 throughput (stated in the output). Re-run on a GPU with ``--device cuda``
to replace the estimate with a measurement.

    python benchmarks/image_full_cost.py [--device cpu|cuda] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from panflow import DataSpec, FlowObjective, Samples, build_config, count_parameters, get_registry, hardware, write_result

ASSUMED_TFLOPS = {"H100 (bf16, 35% of 989 dense TFLOP/s)": 0.35 * 989e12}


def step_flops(model, batch: int, device: str) -> float:
    obj = FlowObjective()
    x = Samples(torch.randn(batch, 3, 32, 32, device=device), torch.randint(0, 10, (batch,), device=device))
    with FlopCounterMode(display=False) as fc:
        obj.loss(model, x, generator=None).backward()
    return float(fc.get_total_flops())


def timed_step(model, batch: int, device: str, reps: int = 3) -> float:
    obj = FlowObjective()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = Samples(torch.randn(batch, 3, 32, 32, device=device), torch.randint(0, 10, (batch,), device=device))
    times = []
    for _ in range(reps + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = obj.loss(model, x)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results")))
    args = ap.parse_args()
    reg = get_registry()
    spec = DataSpec("continuous", (3, 32, 32), num_classes=10)
    rows, md = [], ["# Image `full` preset: cost of one training step (32x32 RGB, 10 classes)", "",
                    "| backbone | params | GFLOP/step (batch 256, fwd+bwd) | CPU s/step at batch 8 | estimated GPU s/step |",
                    "|---|---|---|---|---|"]
    for name in ("unet", "dit"):
        cfg = build_config("image", "full", backbone=name)
        torch.manual_seed(0)
        model = reg.backbone(name).build(spec, **cfg.model.options).to(args.device)
        flops_256 = step_flops(model, 8, args.device) * 256 / 8
        cpu_s = timed_step(model, 8, args.device)
        est = {k: flops_256 / v for k, v in ASSUMED_TFLOPS.items()}
        rows.append({"backbone": name, "options": cfg.model.options, "params": count_parameters(model),
                     "flops_per_step_batch256": flops_256, f"{args.device}_s_per_step_batch8": cpu_s,
                     "estimated_gpu_s_per_step_batch256": est})
        md.append(f"| {name} | {count_parameters(model) / 1e6:.1f}M | {flops_256 / 1e9:.0f} | {cpu_s:.2f} | "
                  + "; ".join(f"{v:.3f} s on {k}" for k, v in est.items()) + " |")
    md += ["", "The GPU column is FLOPs / an assumed sustained throughput, not a measurement (no GPU here).",
           f"Hardware for the measured columns: {hardware()['processor']}, torch {hardware()['torch']}.",
           "Command: `python benchmarks/image_full_cost.py`"]
    write_result(args.out, "image_full_cost", {"rows": rows, "assumed_throughput": ASSUMED_TFLOPS,
                                               "hardware": hardware()}, "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
