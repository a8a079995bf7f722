"""benchmarks/data_streaming.py runs end to end in its quick mode and writes its result files."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_data_streaming_quick(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "data_streaming.py"), "--quick", "--out", str(tmp_path),
                    "--dir", str(tmp_path / "stores")], check=True, capture_output=True, text=True, timeout=600)
    r = json.loads((tmp_path / "data.json").read_text())
    assert r["quick"] and r["memory"]["mode"] == "memory" and [s["workers"] for s in r["streamed"]] == [0, 1, 1]
    assert all(s["samples_per_s"] > 0 and s["stall_ms_per_step"] >= 0 and s["peak_pss_mb"] > 0 for s in r["streamed"])
    assert r["full_pass"]["samples"] == r["stores"]["full"]["samples"] // 256 * 256
    for m, truth in zip(r["memory"]["fitted_mean"], range(4)):  # channel c has mean c, std c + 1
        assert abs(m - truth) < 0.3 * (truth + 1)
    assert not list((tmp_path / "stores").glob("*.zarr"))  # the stores were deleted
    assert (tmp_path / "data.md").read_text().startswith("# Data streaming")
