import json
import os
import signal
import subprocess
import sys
import time

import pytest

from panflow import __version__
from panflow.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out


def test_plugins_table_and_json(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "toy2d" in out and "loaded" in out and "status" in out
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {p["name"] for p in data} >= {"toy2d", "image", "text"}


def test_unknown_domain_suggests(capsys):
    assert main(["train", "imag", "--preset", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "unknown domain 'imag'" in err and "Did you mean 'image'" in err


def test_train_sample_eval_round_trip(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(run), "--set", "train.steps=10"]) == 0
    assert (run / "config.toml").exists() and (run / "metrics.jsonl").exists()
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(run)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(run), "--resume", "--set", "train.steps=20"]) == 0
    assert main(["sample", str(run), "--n", "5", "--solver", "rk4", "--nfe", "8", "--out", str(tmp_path / "s")]) == 0
    lines = (tmp_path / "s" / "samples.csv").read_text().splitlines()
    assert lines[0] == "x,y" and len(lines) == 6
    assert json.loads((tmp_path / "s" / "sampling.json").read_text())["nfe"] == 8
    assert main(["eval", str(run), "--n", "300", "--seed", "1", "--device", "cpu", "--out", str(tmp_path / "e")]) == 0
    card = json.loads((tmp_path / "e" / "scorecard.json").read_text())
    assert [r["role"] for r in card["rows"]] == ["floor", "baseline", "model"]


def test_bad_run_dirs_are_one_line_errors(tmp_path, capsys):
    assert main(["sample", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "toy2d", "--preset", "smoke", "--resume", "--out", str(tmp_path / "nope")]) == 2
    assert "cannot resume" in capsys.readouterr().err
    assert main(["sample", str(tmp_path), "--solver", "eulr"]) == 2


def test_contract_mismatch_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(run), "--set", "train.steps=2"]) == 0
    ckpt = next((run / "checkpoints").glob("step_*"))
    c = json.loads((ckpt / "contract.json").read_text())
    c["objective"]["time_direction"] = "0=data,1=noise"
    (ckpt / "contract.json").write_text(json.dumps(c))
    assert main(["sample", str(run)]) == 2
    assert "time direction" in capsys.readouterr().err
    c["objective"]["time_direction"] = "0=noise,1=data"
    c["plugin"]["version"] = "7.0.0"
    (ckpt / "contract.json").write_text(json.dumps(c))
    assert main(["sample", str(run)]) == 2
    assert "major versions differ" in capsys.readouterr().err


@pytest.mark.slow
def test_sigterm_writes_checkpoint_and_resumes(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "panflow", "train", "toy2d", "--preset", "smoke", "--out", str(run),
           "--set", "train.steps=1000000", "--set", "train.log_every=5"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "checkpoint written" in err
    ckpt = next((run / "checkpoints").glob("step_*"))
    step = json.loads((ckpt / "contract.json").read_text())["step"]
    assert 0 < step < 1_000_000
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(run), "--resume",
                 "--set", f"train.steps={step + 5}"]) == 0
    resumed = next((run / "checkpoints").glob(f"step_{step + 5:08d}"))
    assert json.loads((resumed / "contract.json").read_text())["step"] == step + 5
