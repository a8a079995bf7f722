"""A signal to one rank, to rank 0 or to the whole torchrun job stops every rank at the same step
within seconds, with a loadable checkpoint; a rank that never arrives ends in a clear error."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from panflow.checkpoint import find_checkpoint, load_contract, load_state, load_weights

WORKER = Path(__file__).with_name("stop_worker.py")
pytestmark = pytest.mark.distributed


def _launch(run: Path, mode: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(WORKER), str(run), mode]
    return subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_running(proc: subprocess.Popen, run: Path, timeout: float = 120) -> dict[int, int]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        pids = {r: run / f"pid.{r}" for r in (0, 1)}
        if all(p.exists() and p.read_text() for p in pids.values()):
            return {r: int(p.read_text()) for r, p in pids.items()}
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.1)
    raise AssertionError("the workers never started training")


@pytest.mark.parametrize("target", ["rank1", "rank0", "group"])
def test_sigterm_stops_all_ranks_at_one_step_with_a_checkpoint(tmp_path, target):
    run = tmp_path / "run"
    proc = _launch(run, "train")
    try:
        pids = _wait_running(proc, run)
        t0 = time.time()
        if target == "group":  # a scheduler's preemption: SIGTERM to the launcher, which forwards it
            proc.send_signal(signal.SIGTERM)
        else:
            os.kill(pids[int(target[-1])], signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        took = time.time() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert took < 20, f"stop took {took:.1f} s"
    steps = [json.loads((run / f"stopped.{r}.json").read_text())["step"] for r in (0, 1)]
    assert steps[0] == steps[1], (steps, err[-2000:])
    ckpt = find_checkpoint(run)
    assert load_contract(ckpt)["step"] == steps[0] == int(load_state(ckpt)["step"])
    assert set(load_weights(ckpt, "model")) and set(load_weights(ckpt, "ema"))


def test_a_rank_that_never_arrives_is_a_clear_error_not_a_hang(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    proc = _launch(run, "stuck")
    try:
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    msg = (run / "error.0.txt").read_text()
    assert "rank 0/2" in msg and "the test barrier" in msg and "dist_timeout_s = 4" in msg
