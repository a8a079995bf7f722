"""Trainer overhead and checkpoint cost, in one process and one run.

1. The same model, batch and steps through ``panflow.Trainer`` and through a bare hand-written
   loop, alternated ``reps`` times (medians): the toy2d MLP and a small convolutional UNet.
2. Checkpoint save / load time and peak memory for a 10M-parameter model (model + EMA + Adam
   state), beside a bare ``torch.save``/``torch.load`` of the same tensors.

    python benchmarks/trainer_overhead.py [--quick] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from panflow import FlowObjective, Samples, ScoreCard, TrainConfig, Trainer, bar, hardware, write_result
from panflow.checkpoint import find_checkpoint, load_state, load_weights
from panflow_image.backbones.unet import UNet
from panflow_toy2d.backbones import TimeMLP


def bare_step_fn(model, x, batch, seed):
    """A hand-written rectified-flow training step on ``model`` (its own AdamW and generator)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)

    def step():
        x1 = x[torch.randint(0, x.shape[0], (batch,), generator=g)]
        x0 = torch.randn(x1.shape, generator=g)
        t = torch.rand(batch, generator=g)
        tt = t.reshape(-1, *([1] * (x1.dim() - 1)))
        loss = ((model(tt * x1 + (1 - tt) * x0, t) - (x1 - x0)) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def bare_loop(model, x, steps, batch, seed):
    step = bare_step_fn(model, x, batch, seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def trainer_loop(model, x, steps, batch, seed):
    cfg = TrainConfig(steps=steps, batch_size=batch, lr=1e-3, optimizer="adamw", weight_decay=0.01, ema_decay=0.0,
                      seed=seed, progress=False, log_every=steps, device="cpu")
    tr = Trainer(model, FlowObjective(), Samples(x), cfg)
    t0 = time.perf_counter()
    tr.fit()
    return (time.perf_counter() - t0) / steps


def interleaved(make, x, steps, batch, seed=0):
    """Alternate one Trainer step and one bare step, so both see the same machine conditions;
    returns the summed seconds of each side (steps after a warm-up of 10)."""
    torch.manual_seed(0)
    cfg = TrainConfig(steps=steps, batch_size=batch, lr=1e-3, optimizer="adamw", weight_decay=0.01, ema_decay=0.0,
                      seed=seed, progress=False, device="cpu")
    tr = Trainer(make(), FlowObjective(), Samples(x), cfg)
    torch.manual_seed(0)
    bare_step = bare_step_fn(make(), x, batch, seed)

    def timed(fn, *args):
        a = time.perf_counter()
        fn(*args)
        return time.perf_counter() - a

    t_pan = t_bare = 0.0
    for s in range(steps + 10):  # ABBA order: neither side always runs first
        if s % 2 == 0:
            dp, db = timed(tr.train_step, s), timed(bare_step)
        else:
            db, dp = timed(bare_step), timed(tr.train_step, s)
        if s >= 10:
            t_pan, t_bare = t_pan + dp, t_bare + db
    return {"trainer_s_per_step": t_pan / steps, "bare_s_per_step": t_bare / steps, "ratio": t_pan / t_bare,
            "steps": steps, "batch": batch, "method": "interleaved single steps, ABBA order"}


def overhead(make, x, steps, batch, reps):
    pan, bare = [], []
    for r in range(reps):
        torch.manual_seed(0)
        pan.append(trainer_loop(make(), x, steps, batch, r))
        torch.manual_seed(0)
        bare.append(bare_loop(make(), x, steps, batch, r))
    mp, mb = statistics.median(pan), statistics.median(bare)
    return {"trainer_s_per_step": mp, "bare_s_per_step": mb, "ratio": mp / mb, "reps": reps, "steps": steps,
            "batch": batch, "trainer_all": pan, "bare_all": bare}


class Big(torch.nn.Module):
    """~10M parameters of linear layers (1 + 4 × 1600² ≈ 10.2M)."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(*[torch.nn.Linear(1600, 1600) for _ in range(4)])

    def forward(self, x, t, cond=None):
        return self.layers(x)


def checkpoint_cost(tmp: Path):
    torch.manual_seed(0)
    model = Big()
    params = sum(p.numel() for p in model.parameters())
    cfg = TrainConfig(steps=1, batch_size=8, device="cpu", progress=False, ema_decay=0.999, keep_checkpoints=2)
    tr = Trainer(model, FlowObjective(), Samples(torch.randn(64, 1600)), cfg, run_dir=tmp / "run")
    tr.fit()  # one step so Adam has state
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    saves, loads, bare_saves, bare_loads = [], [], [], []
    for i in range(3):
        tr.step += 1
        t0 = time.perf_counter()
        tr.checkpoint()
        saves.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ck = find_checkpoint(tmp / "run")
        load_weights(ck, "model")
        load_weights(ck, "ema")
        load_state(ck)
        loads.append(time.perf_counter() - t0)
        blob = {"model": model.state_dict(), "ema": tr.ema.state_dict(), "opt": tr.optimizer.state_dict()}
        t0 = time.perf_counter()
        torch.save(blob, tmp / f"bare{i}.pt")
        bare_saves.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        torch.load(tmp / f"bare{i}.pt", weights_only=True)
        bare_loads.append(time.perf_counter() - t0)
    size = sum(f.stat().st_size for f in find_checkpoint(tmp / "run").iterdir())
    return {"params": params, "checkpoint_mb": size / 2 ** 20, "save_s": statistics.median(saves),
            "load_s": statistics.median(loads), "bare_torch_save_s": statistics.median(bare_saves),
            "bare_torch_load_s": statistics.median(bare_loads),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_before_mb": rss0 / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results")))
    args = ap.parse_args()
    steps, reps = (30, 1) if args.quick else (300, 7)
    g = torch.Generator().manual_seed(0)
    make_mlp = lambda: TimeMLP(2, 256, 4)  # noqa: E731
    make_conv = lambda: UNet(1, 8, channels=16, mults=(1, 2), num_res=1, attn_resolutions=(4,), dropout=0.0)  # noqa: E731
    x_mlp, x_conv = torch.randn(100_000, 2, generator=g), torch.rand(2000, 1, 8, 8, generator=g) * 2 - 1
    conv_steps = max(10, steps // 3)
    mlp = interleaved(make_mlp, x_mlp, steps * 2, 1024)
    conv = interleaved(make_conv, x_conv, conv_steps * 2, 64)
    mlp["whole_runs"] = overhead(make_mlp, x_mlp, steps, 1024, reps)
    conv["whole_runs"] = overhead(make_conv, x_conv, conv_steps, 64, reps)
    with tempfile.TemporaryDirectory() as tmp:
        ck = checkpoint_cost(Path(tmp))
    card = ScoreCard("trainer")
    card.bars += [bar("Trainer / bare loop, toy2d MLP (4x256, batch 1024)", mlp["ratio"], "<=", 1.03,
                      f"{mlp['trainer_s_per_step'] * 1e3:.2f} vs {mlp['bare_s_per_step'] * 1e3:.2f} ms/step"),
                  bar("Trainer / bare loop, small conv UNet (batch 64, 8x8)", conv["ratio"], "<=", 1.03,
                      f"{conv['trainer_s_per_step'] * 1e3:.2f} vs {conv['bare_s_per_step'] * 1e3:.2f} ms/step")]
    card.extra.update({"mlp": mlp, "conv": conv, "checkpoint": ck})
    md = ["# Trainer overhead and checkpoint cost", "", card.to_markdown(), "",
          f"Checkpoint of a {ck['params'] / 1e6:.1f}M-parameter model (model + EMA in safetensors, Adam state in "
          f"state.pt, contract JSON; {ck['checkpoint_mb']:.0f} MB): save {ck['save_s']:.3f} s, load {ck['load_s']:.3f} s; "
          f"a bare torch.save/load of the same tensors: {ck['bare_torch_save_s']:.3f} s / {ck['bare_torch_load_s']:.3f} s. "
          f"Peak RSS {ck['peak_rss_mb']:.0f} MB.", "",
          f"Bars: single Trainer and bare steps interleaved ({steps * 2} MLP steps, {conv_steps * 2} conv steps), so "
          "both sides see the same machine conditions. Whole runs through `Trainer.fit` vs a bare loop, "
          f"alternated {reps} times (ratio of medians; noisier on this shared 2-core machine): MLP "
          f"{mlp['whole_runs']['ratio']:.3f}, conv {conv['whole_runs']['ratio']:.3f}. "
          f"Hardware: {hardware()['processor']}, {hardware()['cpu_threads']} threads, torch {hardware()['torch']}.",
          f"Command: `python benchmarks/trainer_overhead.py{' --quick' if args.quick else ''}`"]
    result = {"benchmark": "trainer", **card.to_json()}
    write_result(args.out, "trainer", result, "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
