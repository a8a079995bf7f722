"""Run by torchrun in test_distributed.py: train Tiny and write the loss trajectory (rank 0)."""

import json
import sys

import torch

from panflow import FlowObjective, TrainConfig, Trainer
from panflow.distributed import full_state_dict

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
from tests.core.tiny import Tiny, toy_data  # noqa: E402


def main(out: str, strategy: str, run_dir: str, interrupt: str = "0") -> None:
    """Train 8 steps; with ``interrupt`` = k, stop after k steps and resume in a fresh Trainer."""

    def trainer():
        torch.manual_seed(0)
        cfg = TrainConfig(steps=8, batch_size=64, lr=1e-2, seed=1, progress=False, log_every=1, ema_decay=0.0,
                          device="cpu", strategy=strategy)
        return Trainer(Tiny(), FlowObjective(), toy_data(), cfg, run_dir=run_dir)

    k = int(interrupt)
    records = []
    if k:
        first = trainer()
        records += first.fit(until=k)
        t = trainer()
        assert t.resume() == k
    else:
        t = trainer()
    records += t.fit()
    sd = full_state_dict(t.train_model, strategy, t.dist)
    if t.dist.is_main:
        with open(out, "w") as f:
            json.dump({"loss": [r["loss"] for r in records], "world": t.dist.world_size,
                       "weights": {k: v.flatten().tolist() for k, v in sd.items()}}, f)
    if t.dist.enabled:
        torch.distributed.barrier()  # rank 0 finishes writing before anyone tears the group down
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:5])
