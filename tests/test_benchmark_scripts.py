"""The engine benchmark scripts run end to end (quick settings) and write their result files."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_trainer_overhead_quick(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "trainer_overhead.py"), "--quick", "--out", str(tmp_path)],
                   check=True, capture_output=True, text=True, timeout=600)
    result = json.loads((tmp_path / "trainer.json").read_text())
    assert result["mlp"]["ratio"] > 0 and result["conv"]["ratio"] > 0
    assert 9.5e6 < result["checkpoint"]["params"] < 11e6 and result["checkpoint"]["save_s"] > 0
    assert (tmp_path / "trainer.md").read_text().startswith("# Trainer overhead")
