"""Every documented flag of every command takes effect (or is a clean error where it cannot)."""

import json

import numpy as np
import pytest

from panflow.checkpoint import find_checkpoint, load_contract
from panflow.cli import main

from .cases import base_run

TINY = ["--set", "model.options.width=16", "--set", "model.options.depth=1", "--set", "train.steps=3",
        "--set", "data.options.n_train=256", "--set", "data.options.n_val=64"]
IMG = ["--set", "train.steps=2", "--set", "model.options.channels=8"]


def _contract(run):
    return load_contract(find_checkpoint(run))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    cfg = root / "run.toml"
    cfg.write_text("[train]\nlr = 0.002\n")
    run = root / "run"
    assert main(["train", "toy2d", "--dataset", "moons", "--backbone", "mlp", "--preset", "smoke",
                 "--config", str(cfg), "--out", str(run), "--device", "cpu", *TINY]) == 0
    return run


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return base_run("image")  # shared with the fault catalogue (trained once per process)


def test_train_flags_are_recorded(toy):
    c = _contract(toy)["config"]
    assert c["data"]["dataset"] == "moons" and c["model"]["backbone"] == "mlp" and c["preset"] == "smoke"
    assert c["train"]["lr"] == 0.002 and c["train"]["device"] == "cpu" and c["model"]["options"]["width"] == 16
    assert (toy / "config.toml").read_text().count('device = "cpu"') == 1


@pytest.mark.parametrize("device", ["cpu", '"cpu"'])
def test_device_flag_and_quoted_set_value(tmp_path, device):
    run = tmp_path / "r"
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(run), "--set", f"train.device={device}",
                 *TINY]) == 0
    assert _contract(run)["config"]["train"]["device"] == "cpu"


def test_data_flag(tmp_path, capsys):
    assert main(["train", "toy2d", "--preset", "smoke", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "--data is not supported" in capsys.readouterr().err
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (12, 8, 8), dtype=np.uint8), y=np.arange(12) % 3)
    run = tmp_path / "img"
    assert main(["train", "image", "--preset", "smoke", "--data", str(tmp_path / "d.npz"), "--out", str(run), *IMG]) == 0
    c = _contract(run)
    assert c["dataset"]["source"].endswith("d.npz") and c["data_spec"]["num_classes"] == 3


def test_latent_flag(tmp_path):
    run = tmp_path / "lat"
    assert main(["train", "image", "--preset", "smoke", "--latent", "--out", str(run), *IMG,
                 "--set", "encoder.options.steps=2", "--set", "encoder.options.width=8",
                 "--set", "encoder.options.batch_size=8"]) == 0
    assert _contract(run)["encoder"]["type"] == "latent"


def test_sample_flags(toy, tmp_path):
    out = tmp_path / "s"
    assert main(["sample", str(toy), "--n", "7", "--nfe", "4", "--solver", "sde", "--noise-scale", "0.5",
                 "--seed", "3", "--out", str(out), "--device", "cpu"]) == 0
    setup = json.loads((out / "sampling.json").read_text())
    assert setup["n"] == 7 and setup["solver"] == "sde" and setup["noise_scale"] == 0.5 and setup["seed"] == 3
    assert len((out / "samples.csv").read_text().splitlines()) == 8
    assert main(["sample", str(toy), "--n", "7", "--seed", "4", "--out", str(tmp_path / "s2")]) == 0
    assert (out / "samples.csv").read_text() != (tmp_path / "s2" / "samples.csv").read_text()


def test_label_and_guidance_on_a_conditional_model(digits, tmp_path):
    out = tmp_path / "s"
    assert main(["sample", str(digits), "--n", "3", "--nfe", "2", "--label", "7", "--guidance", "2.0",
                 "--out", str(out)]) == 0
    names = sorted(p.name for p in out.glob("sample_*.png"))
    assert names == [f"sample_0000{i}_class7.png" for i in range(3)]
    assert json.loads((out / "sampling.json").read_text())["guidance"] == 2.0
    # fewer samples into the same folder: the earlier files are replaced, none left stale
    assert main(["sample", str(digits), "--n", "1", "--nfe", "2", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("sample_*.png")) == ["sample_00000_class0.png"]
    # --label null: no label at all (the model's unconditional field, which label dropout trained)
    assert main(["sample", str(digits), "--n", "2", "--nfe", "2", "--label", "null", "--out", str(out)]) == 0
    assert json.loads((out / "sampling.json").read_text())["conditions"] == []
    with pytest.raises(SystemExit):
        main(["sample", str(digits), "--label", "seven", "--out", str(out)])


def test_bad_sample_flags_are_clean_errors(toy, digits, tmp_path, capsys):
    # the other bad values (--n 0, --noise-scale -1, --label/--guidance on an unconditional model,
    # --label out of range, a foreign --out) are cases of the fault catalogue
    for args, msg in [(["--nfe", "0"], "--nfe must be ≥ 1"), (["--solver", "eulr"], "Did you mean 'euler'")]:
        assert main(["sample", str(toy), *args, "--out", str(tmp_path / "s")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("panflow: error: ") and msg in err and err.count("\n") == 1, err
    (tmp_path / "afile").write_text("x")
    assert main(["sample", str(digits), "--out", str(tmp_path / "afile")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_eval_n_must_be_positive(toy, capsys):
    # eval's --n/--seed/--device/--out run in tests/core/test_cli.py::test_train_sample_eval_round_trip
    assert main(["eval", str(toy), "--n", "0"]) == 2
    assert "--n must be ≥ 1" in capsys.readouterr().err


def test_bench_and_plugins_flags(tmp_path, capsys):
    assert main(["bench", "--domains", "toy2dd", "--preset", "smoke", "--out", str(tmp_path), "--seed", "1"]) == 2
    assert "Did you mean 'toy2d'" in capsys.readouterr().err
    assert main(["plugins", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
