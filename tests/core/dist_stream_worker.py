"""Run by torchrun in test_distributed.py: train Tiny on a lazy dataset whose samples carry their
index, and write each rank's (step, indices) log, losses and final weights to ``out.rank<r>.json``."""

import json
import sys
from pathlib import Path

import torch

from panflow import FlowObjective, LoaderOptions, TrainConfig, Trainer
from panflow.distributed import full_state_dict

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.core.streamdata import IndexedLazy, record_indices, sharded  # noqa: E402
from tests.core.tiny import Tiny  # noqa: E402


def main(out: str, kind: str, run_dir: str, interrupt: str = "0") -> None:
    """12 steps of global batch 16 over 96 samples (two epochs); with ``interrupt`` = k, stop
    after k steps and resume in a fresh Trainer. ``kind``: map (LazySamples) | shard (8 shards)."""
    data = IndexedLazy(96) if kind == "map" else sharded(Path(run_dir).parent / "shards", 8, 12)
    log: list = []

    def trainer():
        torch.manual_seed(0)
        cfg = TrainConfig(steps=12, batch_size=16, lr=1e-3, seed=2, progress=False, log_every=1, ema_decay=0.0,
                          device="cpu")
        t = Trainer(Tiny(), FlowObjective(), data, cfg, run_dir=run_dir, loader=LoaderOptions(workers=1))
        record_indices(t, log)
        return t

    k = int(interrupt)
    records = []
    if k:
        records += trainer().fit(until=k)
        t = trainer()
        assert t.resume() == k
    else:
        t = trainer()
    records += t.fit()
    sd = full_state_dict(t.train_model, "ddp", t.dist)
    with open(f"{out}.rank{t.dist.rank}.json", "w") as f:
        json.dump({"loss": [r["loss"] for r in records], "world": t.dist.world_size, "log": log,
                   "weights": {k: v.flatten().tolist() for k, v in sd.items()}}, f)
    if t.dist.enabled:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:5])
