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
