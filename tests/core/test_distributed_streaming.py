"""Streamed data over 2 gloo ranks: disjoint shares, every epoch the whole dataset, bit-exact resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("dist_stream_worker.py")


def _run(tmp_path, nproc: int, kind: str, interrupt: int = 0) -> list[dict]:
    out = tmp_path / f"{kind}-{nproc}-{interrupt}"
    run_dir = tmp_path / f"run-{kind}-{nproc}-{interrupt}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [str(WORKER), str(out), kind, str(run_dir), str(interrupt)]
    cmd = [sys.executable, *args] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *args]
    for _attempt in range(2):  # one retry, as in test_distributed.py (gloo teardown on a loaded machine)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
        if proc.returncode == 0:
            break
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(Path(f"{out}.rank{r}.json").read_text()) for r in range(nproc)]


def _epochs(logs: list[list], steps_per_epoch: int) -> list[list[int]]:
    """Indices read by all ranks together in each epoch of steps."""
    seen: dict[int, list[int]] = {}
    for log in logs:
        for step, idx in log:
            seen.setdefault(step // steps_per_epoch, []).extend(idx)
    return [seen[e] for e in sorted(seen)]


@pytest.mark.distributed
@pytest.mark.slow
def test_two_ranks_read_disjoint_shares_and_resume_bit_exact(tmp_path):
    one = _run(tmp_path, 1, "map")[0]
    two = _run(tmp_path, 2, "map")
    cut = _run(tmp_path, 2, "map", interrupt=3)  # mid-epoch (6 steps per epoch)
    for step in range(12):
        a, b = (dict(map(tuple, r["log"]))[step] for r in two)
        assert not set(a) & set(b) and len(a) == len(b) == 8
    for epoch in _epochs([r["log"] for r in two], 6):
        assert sorted(epoch) == list(range(96))  # the dataset, each sample once
    # the two ranks together read the global batches one rank reads, so training matches it
    assert sorted(i for r in two for _, idx in r["log"] for i in idx) == sorted(i for _, idx in one["log"] for i in idx)
    for a, b in zip(one["loss"], two[0]["loss"]):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    for r_whole, r_cut in zip(two, cut):
        assert r_whole["log"] == r_cut["log"] and r_whole["loss"] == r_cut["loss"]
        assert r_whole["weights"] == r_cut["weights"]  # bit-exact


@pytest.mark.distributed
@pytest.mark.slow
def test_two_ranks_stream_disjoint_shards_and_resume(tmp_path):
    cut = _run(tmp_path, 2, "shard", interrupt=4)
    for epoch in _epochs([r["log"] for r in cut], 6):  # 4 shards × 12 samples = 6 steps of 8 per rank
        assert sorted(epoch) == list(range(96))
    shards = [{i // 12 for _, idx in r["log"][:6] for i in idx} for r in cut]
    assert len(shards[0]) == len(shards[1]) == 4 and not shards[0] & shards[1]
