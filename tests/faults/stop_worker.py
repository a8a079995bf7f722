"""Run by torchrun in test_dist_stop.py: a long 2-rank run that is stopped by a signal.

``train`` mode: train Tiny for (practically) ever, writing ``pid.RANK`` once training runs and
``stopped.RANK.json`` (the step) when the collective stop ends the run (exit 130, like the CLI).
``stuck`` mode: rank 1 never arrives; rank 0's barrier must end in a DistributedError (exit 2).
``cost`` mode: time the stop-flag all-reduce against a train step (for benchmarks/faults_report.py).
"""

import json
import os
import sys
import time
from pathlib import Path

import torch

from panflow import FlowObjective, PanflowError, TrainConfig, Trainer
from panflow.trainer import Interrupted

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.core.tiny import Tiny, toy_data  # noqa: E402


def main(run_dir: str, mode: str) -> int:
    run = Path(run_dir)
    rank = int(os.environ.get("RANK", "0"))
    torch.manual_seed(0)
    cfg = TrainConfig(steps=10**9, batch_size=64, lr=1e-3, seed=1, progress=False, log_every=1, ema_decay=0.99,
                      device="cpu", dist_timeout_s=4.0 if mode == "stuck" else 60.0)
    t = Trainer(Tiny(), FlowObjective(), toy_data(), cfg, run_dir=run)
    if mode == "stuck":
        if rank == 1:
            time.sleep(60)  # never reaches the barrier in time
            return 0
        from panflow import distributed as D

        try:
            D.barrier(t.dist, "the test barrier")
        except PanflowError as exc:
            (run / "error.0.txt").write_text(str(exc))
            return 2
        return 0

    if mode == "cost":  # the price of the per-step stop-flag all-reduce against a (tiny) train step
        from panflow import distributed as D

        def timed(fn, n):
            D.barrier(t.dist)
            t0 = time.perf_counter()
            for i in range(n):
                fn(i)
            return (time.perf_counter() - t0) / n

        flag_s = timed(lambda i: D.any_rank(False, t.dist), 500)
        step_s = timed(lambda i: t.train_step(i), 100)
        if rank == 0:
            (run / "cost.json").write_text(json.dumps({"flag_allreduce_s": flag_s, "tiny_step_s": step_s}))
        D.shutdown(t.dist)
        return 0

    def announce(rec):
        if rec["step"] == 3:
            (run / f"pid.{rank}").write_text(str(os.getpid()))

    t.on_log = announce
    try:
        t.fit()
    except Interrupted:
        (run / f"stopped.{rank}.json").write_text(json.dumps({"step": t.step}))
        return 130
    return 0


if __name__ == "__main__":
    Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
    sys.exit(main(sys.argv[1], sys.argv[2]))
