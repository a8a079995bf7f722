import json

import pytest
import torch

from panflow import CheckpointError, ConfigError, FlowObjective, NonFiniteError, TrainConfig, Trainer
from panflow import checkpoint as ckpt_mod
from panflow.checkpoint import find_checkpoint, load_state, load_weights
from panflow.trainer import lr_at

from .tiny import Tiny, toy_data


def cfg(**kw):
    base = dict(steps=12, batch_size=32, lr=1e-2, seed=3, progress=False, log_every=4, ema_decay=0.9,
                device="cpu", warmup_steps=3, lr_schedule="cosine", grad_clip=1.0)
    base.update(kw)
    return TrainConfig(**base)


def make(tmp, **kw):
    torch.manual_seed(0)
    return Trainer(Tiny(), FlowObjective(), toy_data(), cfg(**kw), run_dir=tmp, contract={"test": True})


def weights(trainer):
    return {**{f"m.{k}": v.clone() for k, v in trainer.model.state_dict().items()},
            **{f"e.{k}": v.clone() for k, v in trainer.ema.state_dict().items()}}


@pytest.mark.parametrize("ema_warmup", [False, True])
def test_resume_is_bit_exact(tmp_path, ema_warmup):
    one = make(tmp_path / "one", ema_warmup=ema_warmup)
    one.fit()
    two = make(tmp_path / "two", ema_warmup=ema_warmup)
    two.fit(until=5)  # interrupted after 5 of 12 steps
    again = make(tmp_path / "two", ema_warmup=ema_warmup)
    assert again.resume() == 5
    again.fit()
    a, b = weights(one), weights(again)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [r["loss"] for r in one.records if r["step"] > 5] == [r["loss"] for r in again.records]


def test_accumulation_matches_full_batch(tmp_path):
    a = make(tmp_path / "a", ema_decay=0.0, grad_clip=0.0)
    b = make(tmp_path / "b", ema_decay=0.0, grad_clip=0.0, accumulation=4)
    a.fit()
    b.fit()
    for va, vb in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        torch.testing.assert_close(va, vb, rtol=1e-5, atol=1e-6)


def test_checkpoint_contents_and_keep_k(tmp_path):
    t = make(tmp_path, steps=10, checkpoint_every=2, keep_checkpoints=3)
    t.fit()
    root = tmp_path / "checkpoints"
    kept = sorted(p.name for p in root.glob("step_*"))
    assert kept == ["step_00000006", "step_00000008", "step_00000010"]
    last = find_checkpoint(tmp_path)
    contract = json.loads((last / "contract.json").read_text())
    assert contract["test"] is True and contract["step"] == 10 and "panflow_version" in contract
    assert set(load_weights(last, "ema")) == set(t.ema.state_dict())
    assert load_state(last)["step"] == 10
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [4, 8, 10]


def test_crash_while_writing_keeps_previous_checkpoint(tmp_path, monkeypatch):
    t = make(tmp_path, steps=4)
    t.fit()
    good = find_checkpoint(tmp_path)
    before = (good / "model.safetensors").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod, "save_file", boom)
    t2 = make(tmp_path, steps=8)
    t2.resume()
    with pytest.raises(OSError, match="disk full"):
        t2.fit()
    assert find_checkpoint(tmp_path) == good
    assert (good / "model.safetensors").read_bytes() == before
    assert not list((tmp_path / "checkpoints").glob(".step_*"))  # no temporary leftovers


def test_non_finite_loss_stops_with_step_and_keeps_checkpoint(tmp_path):
    t = make(tmp_path, steps=10, checkpoint_every=2)
    t.model.poison_after = 5
    with pytest.raises(NonFiniteError, match="at step 5"):
        t.fit()
    last = find_checkpoint(tmp_path)
    assert last.name == "step_00000004"
    assert all(torch.isfinite(v).all() for v in load_weights(last, "model").values())


def test_bounded_skip_of_bad_steps(tmp_path):
    t = make(tmp_path, steps=10, max_bad_steps=3)
    t.model.poison_after = 5  # steps 5..9 are bad: the 4th bad one exceeds the bound
    with pytest.raises(NonFiniteError):
        t.fit()
    assert t.bad_steps == 4
    t2 = make(tmp_path / "b", steps=10, max_bad_steps=3)
    calls = {"n": 0}
    orig = t2.model.forward

    def flaky(x, tt, c=None):
        calls["n"] += 1
        out = orig(x, tt, c)
        return out * float("nan") if calls["n"] in (3, 4) else out

    t2.model.forward = flaky
    t2.fit()
    assert t2.bad_steps == 2 and t2.step == 10
    assert all(torch.isfinite(p).all() for p in t2.model.parameters())


def test_corrupted_checkpoint_is_a_clear_error(tmp_path):
    make(tmp_path, steps=2).fit()
    last = find_checkpoint(tmp_path)
    p = last / "model.safetensors"
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        make(tmp_path).resume()
    (last / "state.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="state.pt"):
        load_state(last)
    with pytest.raises(CheckpointError, match="does not exist"):
        find_checkpoint(tmp_path / "nope")


def test_state_file_is_loadable_without_pickle(tmp_path):
    make(tmp_path, steps=2).fit()
    state = torch.load(find_checkpoint(tmp_path) / "state.pt", weights_only=True)
    assert state["step"] == 2 and "optimizer" in state


def test_lr_schedule_warmup_then_cosine():
    c = TrainConfig(steps=100, lr=1.0, warmup_steps=10, lr_schedule="cosine", min_lr_ratio=0.1)
    assert lr_at(0, c) == pytest.approx(0.1)
    assert lr_at(9, c) == pytest.approx(1.0)
    assert lr_at(10, c) == pytest.approx(1.0)
    assert lr_at(55, c) == pytest.approx(0.55)
    assert lr_at(100, c) == pytest.approx(0.1)


def test_bad_batch_division_and_amp_name(tmp_path):
    with pytest.raises(ConfigError, match="not divisible"):
        make(tmp_path, batch_size=30, accumulation=4)
    with pytest.raises(ConfigError, match="amp"):
        make(tmp_path, amp="fp8")


def test_bf16_autocast_runs_on_cpu(tmp_path):
    t = make(tmp_path, steps=3, amp="bf16")
    t.fit()
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in t.records)


def test_ema_warmup_averages_recent_weights():
    """With warm-up, update n uses min(decay, (1+n)/(10+n)); the first update copies 2/11 of the
    live weights in, and a constant live model is reached geometrically with those decays."""
    from panflow.ema import EMA

    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = EMA(model, decay=0.999, warmup=True)
    assert ema.decay_at(1) == pytest.approx(2 / 11) and ema.decay_at(10**6) == 0.999
    with torch.no_grad():
        model.weight.fill_(1.0)
    expect = 0.0
    for n in range(1, 101):
        ema.update(n)
        expect = ema.decay_at(n) * expect + (1 - ema.decay_at(n))
    assert float(ema.model.weight) == pytest.approx(expect, rel=1e-6)
    assert float(ema.model.weight) > 0.9  # no warm-up at 0.999 would still be at 1 - 0.999**100 = 0.095
    with pytest.raises(ValueError, match="update count"):
        ema.update()
