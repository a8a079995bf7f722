"""Streaming training data from an on-disk zarr store larger than the run's memory budget.

Generates two zarr stores of ``[N, 4, 64, 64]`` float32 samples (one chunk per sample, no
compression; channel ``c`` has mean ``c`` and std ``c + 1``, so the fitted statistics have a known
truth): the full one (``--size-gb``, default 4) and one of 1/8 its size. Then, each in a fresh
process so peak memory is its own:

1. in-memory path on the 1/8 store (loaded into a tensor, encoded once, indexed);
2. streamed path (``panflow.LazySamples`` over zarr, DataLoader, encoded per batch) on the 1/8 and
   the full store with 0, 1 and 2 workers: samples/s, data-loading stall per step, peak memory;
3. one pass over every sample of the full store (2 workers): peak memory while reading all of it;
4. 2 gloo ranks (torchrun) on the 1/8 store for one epoch: the union of what the ranks read is the
   dataset without duplicates, and a run interrupted mid-epoch and resumed ends bit-exactly equal.

Peak memory is the peak of the summed proportional set size (PSS, /proc/<pid>/smaps_rollup) of
the process and its DataLoader workers, sampled every 0.1 s; ``ru_maxrss`` of the main process and
of the largest worker are reported too. The stores are deleted at the end.

    python benchmarks/data_streaming.py [--size-gb 4] [--dir DIR] [--quick] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
import zarr
from torch import nn

from panflow import (
    FlowObjective,
    LazySamples,
    LoaderOptions,
    Samples,
    StandardEncoder,
    TrainConfig,
    Trainer,
    draw_subset,
    hardware,
    write_result,
)

SHAPE = (4, 64, 64)
QUICK_SHAPE = (4, 8, 8)


# -- the data ---------------------------------------------------------------------------------------
def generate(path: Path, n: int, shape: tuple[int, ...], seed: int = 0) -> float:
    """Write ``n`` samples to a zarr store at ``path``; returns seconds taken."""
    t0 = time.perf_counter()
    arr = zarr.create_array(str(path), shape=(n, *shape), chunks=(1, *shape), dtype="float32",
                            compressors=None, overwrite=True)
    rng = np.random.default_rng(seed)
    mean = np.arange(shape[0], dtype=np.float32).reshape(1, -1, 1, 1)
    for i in range(0, n, 512):
        m = min(512, n - i)
        arr[i:i + m] = rng.standard_normal((m, *shape), dtype=np.float32) * (mean + 1) + mean
    return time.perf_counter() - t0


class ZarrSamples(LazySamples):
    """Map-style view of a zarr array: each process opens the store itself, batches are read with
    one orthogonal selection (zarr fetches their chunks concurrently). The index rides along as
    the condition ``index`` (ignored by the model) so the 2-rank check can see what was read."""

    def __init__(self, path: str, n: int | None = None):
        self.path = path
        self._arr, self._pid = None, None
        super().__init__(n if n is not None else self.arr.shape[0])

    @property
    def arr(self):
        if self._pid != os.getpid():
            self._arr, self._pid = zarr.open_array(self.path, mode="r"), os.getpid()
        return self._arr

    def __getstate__(self):
        return {**self.__dict__, "_arr": None, "_pid": None}

    def item(self, i):
        return {"x": torch.from_numpy(self.arr[i]), "cond": {"index": torch.tensor(i)}}

    def items(self, indices):
        order = np.argsort(indices)
        block = self.arr.oindex[np.asarray(indices)[order]]
        out = [None] * len(indices)
        for k, j in enumerate(order):
            out[j] = {"x": torch.from_numpy(block[k]), "cond": {"index": torch.tensor(indices[j])}}
        return out

    def name(self, i):
        return f"{self.path}[{i}]"


class SmallConv(nn.Module):
    """A small time-conditioned conv net on ``[B, 4, H, W]``."""

    def __init__(self, channels: int = 4, width: int = 32):
        super().__init__()
        self.inp, self.mid = nn.Conv2d(channels, width, 3, padding=1), nn.Conv2d(width, width, 3, padding=1)
        self.out, self.time = nn.Conv2d(width, channels, 3, padding=1), nn.Linear(1, width)

    def forward(self, x, t, cond=None):
        h = torch.nn.functional.silu(self.inp(x) + self.time(t[:, None].to(x.dtype))[:, :, None, None])
        return self.out(torch.nn.functional.silu(self.mid(h)))


# -- memory ------------------------------------------------------------------------------------------
def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


class PeakMemory:
    """Samples the summed PSS of this process and its children every ``every`` seconds."""

    def __init__(self, every: float = 0.1):
        self.every, self.peak_kb, self._stop = every, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = os.getpid()
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, _pss_kb(me) + sum(_pss_kb(c) for c in _children(me)))
            self._stop.wait(self.every)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def _maxrss_mb(who) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


# -- one job (runs in its own process) ---------------------------------------------------------------
def _trainer(data, encode, workers: int, steps: int, batch: int, seed: int, run_dir=None) -> Trainer:
    torch.manual_seed(seed)
    cfg = TrainConfig(steps=steps, batch_size=batch, lr=1e-3, seed=seed, progress=False, log_every=10**9,
                      ema_decay=0.0, device="cpu", amp="off")
    return Trainer(SmallConv(), FlowObjective(), data, cfg, run_dir=run_dir, encode=encode,
                   loader=LoaderOptions(workers=workers, prefetch=2))


def job_train(a: dict) -> dict:
    """Train ``steps`` steps in-memory or streamed; time the steps after ``warm``."""
    lazy = ZarrSamples(a["store"])
    with PeakMemory() as mem:
        enc = StandardEncoder()
        enc.fit(draw_subset(lazy, a["fit_samples"], seed=0))
        if a["mode"] == "memory":
            t0 = time.perf_counter()
            x = torch.from_numpy(zarr.open_array(a["store"], mode="r")[:])
            load_s = time.perf_counter() - t0
            data, encode = Samples(enc.encode(x)), None
            del x
        else:
            data, encode, load_s = lazy, enc.encode, 0.0
        t = _trainer(data, encode, a["workers"], a["steps"], a["batch"], 0)
        times = []
        for s in range(a["steps"]):
            if s == a["warm"]:
                stall0 = t.feeder.stall_s if t.feeder is not None else 0.0
            t0 = time.perf_counter()
            t.train_step(s)
            times.append(time.perf_counter() - t0)
        stall = (t.feeder.stall_s - stall0) if t.feeder is not None else 0.0
        if t.feeder is not None:
            t.feeder.close()
    timed = sorted(times[a["warm"]:])
    median = timed[len(timed) // 2] if len(timed) % 2 else 0.5 * (timed[len(timed) // 2 - 1] + timed[len(timed) // 2])
    return {"mode": a["mode"], "workers": a["workers"], "store_gb": a["store_gb"], "samples": len(lazy),
            "steps_timed": len(timed), "batch": a["batch"], "samples_per_s": a["batch"] / median,
            "samples_per_s_mean": a["batch"] * len(timed) / sum(timed),
            "stall_ms_per_step": 1e3 * stall / len(timed), "load_s": load_s,
            "peak_pss_mb": mem.peak_kb / 1024, "main_maxrss_mb": _maxrss_mb(resource.RUSAGE_SELF),
            "worker_maxrss_mb": _maxrss_mb(resource.RUSAGE_CHILDREN),
            "fitted_mean": enc.mean.tolist(), "fitted_std": enc.std.tolist()}


def job_pass(a: dict) -> dict:
    """Read every sample of the store once through the streamed loader (no model)."""
    lazy = ZarrSamples(a["store"])
    from panflow.loader import make_feeder

    f = make_feeder(lazy, a["batch"], 0, 1, 0, torch.device("cpu"), None, LoaderOptions(workers=a["workers"]))
    steps = len(lazy) // a["batch"]
    t0 = time.perf_counter()
    with PeakMemory() as mem:
        total = 0.0
        for s in range(steps):
            total += float(f.batch(s).x[:, 0, 0, 0].sum())
        f.close()
    wall = time.perf_counter() - t0
    return {"samples": steps * a["batch"], "gb_read": steps * a["batch"] * a["sample_bytes"] / 2**30, "wall_s": wall,
            "mb_per_s": steps * a["batch"] * a["sample_bytes"] / 2**20 / wall, "peak_pss_mb": mem.peak_kb / 1024,
            "main_maxrss_mb": _maxrss_mb(resource.RUSAGE_SELF), "worker_maxrss_mb": _maxrss_mb(resource.RUSAGE_CHILDREN)}


def job_dist(a: dict) -> None:
    """(torchrun, 2 ranks) one epoch, whole or interrupted at ``a['interrupt']`` and resumed."""
    lazy = ZarrSamples(a["store"])
    enc = StandardEncoder()
    enc.fit(draw_subset(lazy, 256, seed=0))
    steps = len(lazy) // a["batch"]
    log = []

    def make():
        t = _trainer(lazy, enc.encode, 1, steps, a["batch"], 0, run_dir=a["run_dir"])
        orig = t.feeder.batch

        def batch(step):
            s = orig(step)
            log.append(s.cond["index"].tolist())
            return s
        t.feeder.batch = batch
        return t

    k = a["interrupt"]
    if k:
        make().fit(until=k)
        t = make()
        t.resume()
    else:
        t = make()
    t.fit()
    w = {n: v.detach().flatten().tolist() for n, v in t.model.state_dict().items()}
    Path(f"{a['out']}.rank{t.dist.rank}.json").write_text(json.dumps({"log": log, "weights": w}))
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def _child(job: str, args: dict) -> dict:
    """Run ``job`` in a fresh Python process and return its JSON result."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run([sys.executable, __file__, "--job", job, json.dumps(args)], capture_output=True, text=True,
                          env=env, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"job {job} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def dist_check(store: str, batch: int, tmp: Path) -> dict:
    def run(interrupt: int) -> list[dict]:
        out = tmp / f"dist{interrupt}"
        args = {"store": store, "batch": batch, "interrupt": interrupt, "out": str(out), "run_dir": str(tmp / f"r{interrupt}")}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", __file__,
               "--job", "dist", json.dumps(args)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                              timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"2-rank run failed:\n{proc.stderr[-3000:]}")
        res = [json.loads(Path(f"{out}.rank{r}.json").read_text()) for r in range(2)]
        res[0]["wall_s"] = time.perf_counter() - t0
        return res

    n = len(ZarrSamples(store))
    k = n // batch // 2 + 1  # mid-epoch
    whole, cut = run(0), run(k)
    seen = [i for r in whole for b in r["log"] for i in b]
    per_step_disjoint = all(not set(a) & set(b) for a, b in zip(whole[0]["log"], whole[1]["log"]))
    return {"samples": n, "steps": len(whole[0]["log"]), "global_batch": batch,
            "read_by_rank": [sum(len(b) for b in r["log"]) for r in whole],
            "union_is_dataset_without_duplicates": sorted(seen) == list(range(n)),
            "ranks_disjoint_every_step": per_step_disjoint,
            "resume_interrupted_at_step": k,
            "resume_reads_the_same_batches": [r["log"] for r in whole] == [r["log"] for r in cut],
            "resume_weights_bit_exact": all(a["weights"] == b["weights"] for a, b in zip(whole, cut)),
            "wall_s": {"whole": whole[0]["wall_s"], "interrupted_and_resumed": cut[0]["wall_s"]}}


# -- the report -------------------------------------------------------------------------------------
def markdown(r: dict) -> str:
    lines = ["# Data streaming: training from a zarr store larger than memory", "",
             f"Stores: {r['stores']['full']['gb']:.2f} GiB ({r['stores']['full']['samples']} samples of "
             f"{r['sample_shape']} float32) and 1/8 of it ({r['stores']['eighth']['gb']:.2f} GiB); generated in "
             f"{r['stores']['generate_s']:.0f} s and deleted after. Model: a 3-layer conv net, global batch "
             f"{r['batch']}, {r['steps']} steps ({r['warm']} warm-up steps not timed), CPU. "
             f"{r['note']}", "",
             "| path | store | workers | samples/s (median step) | mean | ratio to in-memory | stall ms/step "
             "| peak PSS MB | main maxRSS MB | worker maxRSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    base = r["memory"]["samples_per_s"]
    for row in [r["memory"], *r["streamed"]]:
        lines.append(f"| {row['mode']} | {row['store_gb']:.2f} GiB | {row['workers']} | {row['samples_per_s']:.0f} | "
                     f"{row['samples_per_s_mean']:.0f} | "
                     f"{row['samples_per_s'] / base:.2f} | {row['stall_ms_per_step']:.1f} | {row['peak_pss_mb']:.0f} | "
                     f"{row['main_maxrss_mb']:.0f} | {row['worker_maxrss_mb']:.0f} |")
    p = r["full_pass"]
    lines += ["", f"One pass over every sample of the full store ({p['gb_read']:.2f} GiB, 2 workers): "
              f"{p['wall_s']:.0f} s ({p['mb_per_s']:.0f} MiB/s), peak PSS {p['peak_pss_mb']:.0f} MB.", ""]
    d = r.get("two_ranks")
    if d:
        lines += [f"2 gloo ranks, one epoch of the 1/8 store ({d['samples']} samples, {d['steps']} steps of "
                  f"{d['global_batch']}): read {d['read_by_rank']} samples per rank; union is the dataset without "
                  f"duplicates: **{d['union_is_dataset_without_duplicates']}**; ranks disjoint every step: "
                  f"**{d['ranks_disjoint_every_step']}**; interrupted at step {d['resume_interrupted_at_step']} and "
                  f"resumed: same batches **{d['resume_reads_the_same_batches']}**, weights bit-exact "
                  f"**{d['resume_weights_bit_exact']}**.", ""]
    lines += ["Bars: " + "; ".join(f"{k}: **{'pass' if v else 'FAIL'}**" for k, v in r["bars"].items()), "",
              f"Fitted channel means (truth 0, 1, 2, 3): {', '.join(f'{m:.3f}' for m in r['memory']['fitted_mean'])}.",
              "", f"Total wall time {r['wall_s']:.0f} s."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=4.0)
    ap.add_argument("--dir", help="where to generate the stores (default: a temporary directory)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warm", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--quick", action="store_true", help="tiny stores, few steps, no 2-rank run (plumbing only)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--name", default="data")
    ap.add_argument("--job")
    ap.add_argument("args", nargs="?")
    a = ap.parse_args()
    if a.job:
        fn = {"train": job_train, "pass": job_pass, "dist": job_dist}[a.job]
        res = fn(json.loads(a.args))
        if res is not None:
            print(json.dumps(res))
        return
    t_start = time.perf_counter()
    shape = QUICK_SHAPE if a.quick else SHAPE
    sample_bytes = 4 * int(np.prod(shape))
    size = 0.002 if a.quick else a.size_gb
    n_full = int(size * 2**30) // sample_bytes // 64 * 64
    root = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="panflow-data-"))
    root.mkdir(parents=True, exist_ok=True)
    need = n_full * 1.125 * (sample_bytes + 3 * 4096) + 2**28  # zarr v3 keeps each chunk in its own directories
    free = shutil.disk_usage(root).free
    if free < need:
        sys.exit(f"data_streaming: needs {need / 2**30:.1f} GiB free in {root} for the stores, has "
                 f"{free / 2**30:.1f} GiB; pass --dir on a larger disk or a smaller --size-gb")
    steps, warm = (3, 1) if a.quick else (a.steps, a.warm)
    batch = 16 if a.quick else a.batch
    try:
        full, eighth = root / "full.zarr", root / "eighth.zarr"
        gen_s = generate(full, n_full, shape, seed=0) + generate(eighth, n_full // 8, shape, seed=1)
        common = {"batch": batch, "steps": steps, "warm": warm, "fit_samples": 64 if a.quick else 2048}
        run = (lambda job, args: globals()[f"job_{job}"](args)) if a.quick else _child
        memory = run("train", {**common, "store": str(eighth), "mode": "memory", "workers": 0, "store_gb": size / 8})
        streamed = []
        plan = [(eighth, size / 8, 0), (eighth, size / 8, 1), (full, size, 1)] if a.quick else \
            [(st, gb, w) for st, gb in ((eighth, size / 8), (full, size)) for w in (0, 1, 2)]
        for store, gb, w in plan:
            streamed.append(run("train", {**common, "store": str(store), "mode": "streamed", "workers": w,
                                          "store_gb": gb}))
        full_pass = run("pass", {"store": str(full), "batch": 256, "workers": 0 if a.quick else 2,
                                 "sample_bytes": sample_bytes})
        two = None if a.quick else dist_check(str(eighth), 64, root)
    finally:
        shutil.rmtree(root / "full.zarr", ignore_errors=True)
        shutil.rmtree(root / "eighth.zarr", ignore_errors=True)
        if not a.dir:
            shutil.rmtree(root, ignore_errors=True)
    best = max(s["samples_per_s"] for s in streamed if s["store_gb"] == size / 8)
    peak = max([*(s["peak_pss_mb"] for s in streamed), full_pass["peak_pss_mb"]])
    bars = {"peak PSS ≤ 1.5 GB on every streamed run and the full pass": peak <= 1536,
            "streamed ≥ 0.9 × in-memory samples/s (best worker count, 1/8 store)": best >= 0.9 * memory["samples_per_s"]}
    if two:
        bars["2 ranks: union = dataset, no duplicates"] = two["union_is_dataset_without_duplicates"]
        bars["mid-epoch resume bit-exact"] = two["resume_weights_bit_exact"]
    result = {"quick": a.quick, "sample_shape": list(shape), "batch": batch, "steps": steps, "warm": warm,
              "stores": {"full": {"samples": n_full, "gb": n_full * sample_bytes / 2**30},
                         "eighth": {"samples": n_full // 8, "gb": n_full // 8 * sample_bytes / 2**30}, "generate_s": gen_s},
              "memory": memory, "streamed": streamed, "full_pass": full_pass, "two_ranks": two, "bars": bars,
              "note": ("Wall times as measured on a 2-core machine shared with other jobs (not idle): the "
                       "throughputs carry that noise, and DataLoader workers compete with training for the same 2 "
                       "cores." + (" QUICK MODE: plumbing only, sizes too small to mean anything." if a.quick else "")),
              "hardware": hardware(), "wall_s": time.perf_counter() - t_start}
    write_result(a.out, a.name, result, markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
