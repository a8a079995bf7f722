"""Conditions pass through the encoder (training and sampling), and a run may pick its objective."""

import pytest
import torch
from torch import nn

import panflow.run as run_mod
from panflow import (
    Backbone,
    ConditionSpec,
    DataBundle,
    Dataset,
    DataSpec,
    Domain,
    Encoder,
    FlowObjective,
    Objective,
    Registry,
    Samples,
    UnknownNameError,
    assemble,
    build_config,
    load_run,
    train,
)
from panflow.assembly import register_core


class ScaleCond(Encoder):
    """Multiplies the condition 'c' by 10: the model must only ever see the scaled values."""

    def encode_cond(self, cond):
        return {k: v * 10.0 if k == "c" else v for k, v in cond.items()}


class SeesCond(nn.Module):
    """Records the largest |cond['c']| it was given."""

    def __init__(self, spec):
        super().__init__()
        self.lin = nn.Linear(spec.shape[0] + 2, spec.shape[0])
        self.seen = 0.0

    def forward(self, x, t, cond):
        c = cond["c"]
        self.seen = max(self.seen, float(c.abs().max()))
        return self.lin(torch.cat([x, c, t[:, None]], -1))


def _bundle(_opts) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    x, c = torch.randn(64, 2, generator=g), torch.rand(64, 1, generator=g) * 0.5
    return DataBundle(Samples(x[:48], cond={"c": c[:48]}), Samples(x[48:], cond={"c": c[48:]}))


def _registry() -> Registry:
    reg = Registry()
    register_core(reg)
    r = reg.scoped("t")
    r.add_domain(Domain("cdom", "test", "d", "sees",
                        lambda b: DataSpec("continuous", (2,), conditions=(ConditionSpec("c", shape=(1,)),)),
                        lambda cfg: ScaleCond(), lambda cfg, t: ScaleCond(), lambda *a, **k: [],
                        presets={"smoke": {"train.steps": 3, "train.batch_size": 16, "train.progress": False,
                                           "train.device": "cpu"}}))
    r.add_dataset(Dataset("d", "cdom", _bundle))
    r.add_backbone(Backbone("sees", lambda spec: SeesCond(spec), consumes=lambda c, s: True))
    r.add_objective(Objective("flow2", lambda spec, cfg, dom: FlowObjective(conditions=spec.conditions),
                              lambda d, spec: FlowObjective.from_json(d, spec)))
    return reg


def test_base_encoder_leaves_conditions_unchanged():
    c = {"obs": torch.randn(3, 2)}
    assert Encoder().encode_cond(c)["obs"] is c["obs"]


def test_training_and_sampling_see_encoded_conditions(tmp_path, monkeypatch):
    reg = _registry()
    monkeypatch.setattr(run_mod, "get_registry", lambda refresh=False: reg)
    cfg = build_config("cdom", "smoke", registry=reg)
    out = train(cfg, tmp_path / "run")
    r = load_run(out, device="cpu")
    r.model.seen = 0.0
    r.generate(4, r.options(nfe=2), cond={"c": torch.full((4, 1), 0.3)})
    assert r.model.seen == pytest.approx(3.0)  # 0.3 raw -> 3.0 encoded; before the fix the model saw 0.3


def test_run_config_picks_a_registered_objective():
    reg = _registry()
    cfg = build_config("cdom", "smoke", registry=reg, overrides={"flow.objective": "flow2"})
    a = assemble(reg, cfg, _bundle(None))
    assert isinstance(a.objective, FlowObjective) and cfg.flow.objective == "flow2"
    cfg = build_config("cdom", "smoke", registry=reg, overrides={"flow.objective": "flwo"})
    with pytest.raises(UnknownNameError, match="flow"):
        assemble(reg, cfg, _bundle(None))
