"""``--resume`` continues the saved config: a changed setting is refused (listing every difference)
before anything is written; safe changes are allowed and recorded in the contract's history."""

import json

import pytest

from panflow.checkpoint import find_checkpoint, load_contract
from panflow.cli import main

SMALL = ["--set", "model.options.width=16", "--set", "model.options.depth=1", "--set", "train.steps=4",
         "--set", "train.log_every=1", "--set", "data.options.n_train=256"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("resume") / "run"
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(run), "--device", "cpu", *SMALL]) == 0
    return run


def _snapshot(run):
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("change, listed", [
    (["--set", "flow.schedule=\"cosine\""], "flow.schedule: 'linear' -> 'cosine'"),
    (["--set", "flow.prediction=\"noise\"", "--set", "train.lr=0.5"], "train.lr: "),
    (["--set", "train.batch_size=64"], "train.batch_size: 128 -> 64"),
    (["--set", "model.options.width=32"], "model.options.width: 16 -> 32"),
    (["--preset", "small"], "preset: 'smoke' -> 'small'"),
])
def test_changed_setting_is_refused_before_anything_is_written(run, capsys, change, listed):
    before = _snapshot(run)
    assert main(["train", "toy2d", "--out", str(run), "--resume", *change]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and listed in err, err
    if "noise" in change[1]:
        assert "flow.prediction: 'velocity' -> 'noise'" in err
    assert _snapshot(run) == before


def test_safe_changes_continue_the_saved_config_and_are_recorded(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(run), "--device", "cpu", *SMALL,
                 "--set", "train.checkpoint_every=2"]) == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4
    # no --preset and no --set of the model: the saved smoke config (width 16) is what continues
    assert main(["train", "toy2d", "--out", str(run), "--resume", "--set", "train.steps=6",
                 "--set", "train.log_every=2"]) == 0
    c = load_contract(find_checkpoint(run))
    assert c["step"] == 6 and c["config"]["model"]["options"]["width"] == 16 and c["config"]["preset"] == "smoke"
    assert c["history"] == [{"step": 4, "changed": {"train.log_every": [1, 2], "train.steps": [4, 6]}}]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 6]
    assert main(["train", "toy2d", "--out", str(run), "--resume", "--set", "train.steps=3"]) == 2
    assert "already at step 6" in capsys.readouterr().err


def test_resume_from_an_earlier_checkpoint_logs_each_step_once(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(run), "--device", "cpu", *SMALL,
                 "--set", "train.checkpoint_every=2"]) == 0
    ckpts = run / "checkpoints"
    import shutil

    shutil.rmtree(ckpts / "step_00000004")  # as if killed between the step-2 and step-4 checkpoints
    (ckpts / "latest").write_text("step_00000002")
    assert main(["train", "toy2d", "--out", str(run), "--resume"]) == 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_changed_data_is_refused(run, capsys):
    ckpt = find_checkpoint(run)
    path = ckpt / "contract.json"
    c = json.loads(path.read_text())
    saved = dict(c)
    c["data_spec"] = {**c["data_spec"], "shape": [3]}
    path.write_text(json.dumps(c))
    try:
        before = _snapshot(run)
        assert main(["train", "toy2d", "--out", str(run), "--resume"]) == 2
        err = capsys.readouterr().err
        assert "differs now" in err and "data_spec.shape" in err
        assert _snapshot(run) == before
    finally:
        path.write_text(json.dumps(saved))
