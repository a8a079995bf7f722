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


def test_text_budget_quick(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "text_budget.py"), "--steps", "8", "--nelbo-seqs", "16",
                    "--out", str(tmp_path), "--name", "tb"], check=True, capture_output=True, text=True, timeout=600)
    result = json.loads((tmp_path / "tb.json").read_text())
    assert [r["step"] for r in result["by_step"]] == [2, 4, 6, 8]
    for r in result["by_step"]:
        assert r["ratio"] == pytest.approx(r["nelbo_bits_per_byte"] / r["ar_bits_per_byte"])
        assert 0 < r["ar_bits_per_byte"] <= 8.5  # an untrained byte model sits at log2(256) = 8
    assert (tmp_path / "tb.md").read_text().startswith("# Text: NELBO / AR NLL")
