"""benchmarks/few_step.py runs end to end on its smoke preset and writes its score card."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_few_step_smoke(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "few_step.py"), "--preset", "smoke", "--out", str(tmp_path)],
                   check=True, capture_output=True, text=True, timeout=600)
    result = json.loads((tmp_path / "few_step.json").read_text())
    roles = [r["role"] for r in result["rows"]]
    assert roles[:2] == ["floor · true vs true", "baseline · one Gaussian"]
    assert "model · shortcut · 1 step" in roles and "model · OT-coupled FM · 16 steps" in roles
    assert all(r["metrics"]["w2"] > 0 for r in result["rows"])
    assert len(result["bars"]) == 9 and result["runs"]["OT-coupled FM"]["coupling_s_per_step"] > 0
    assert "model · 2-rectified FM · 1 step" in roles and result["runs"]["2-rectified FM"]["pairs"] == 512
    curve = result["runs"]["shortcut"]["curve"]  # time-to-quality: EMA checkpoints scored along the run
    assert [c["step"] for c in curve] == [10, 20, 30] and curve[0]["train_s"] < curve[-1]["train_s"]
    assert set(result["time_to_quality_ratio"]) == {"shortcut", "OT-coupled FM", "2-rectified FM"}
    assert (tmp_path / "few_step.md").read_text().startswith("# Few-step generation")


@pytest.mark.slow
def test_few_step_digits_smoke(tmp_path):
    """The digits few-step benchmark makes its four runs and the pairs, reuses them, and scores them."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "few_step_digits.py"), "--preset", "smoke", "--pairs", "64",
           "--work", str(tmp_path / "work"), "--out", str(tmp_path)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900)
    result = json.loads((tmp_path / "few_step_digits.json").read_text())
    roles = [r["role"] for r in result["rows"]]
    assert roles[:2] == ["floor", "baseline"]
    for name in ("plain FM", "shortcut", "2-rectified FM", "2-rectified FM, U-shaped t"):
        assert [result["fd"][name][k] > 0 for k in ("1", "2", "4", "64")] == [True] * 4
    assert len(result["bars"]) == 9 and result["pairs"]["n"] == 64
    contract = next((tmp_path / "work" / "reflow" / "checkpoints").glob("step_*/contract.json"))
    assert json.loads(contract.read_text())["init_from"]["run"]
    contract_u = json.loads(next((tmp_path / "work" / "reflow_u" / "checkpoints").glob("step_*/contract.json")).read_text())
    assert contract_u["objective"]["time_sampler"] == {"name": "u_shaped", "a": 4.0}
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900)  # second time: all reused
    again = json.loads((tmp_path / "few_step_digits.json").read_text())
    assert sum("reused" in n for n in again["notes"]) == 5
