"""Conditioning in the core: closed-form checks of known parts, context tensors and guidance."""

import math

import pytest
import torch

from panflow import (
    Backbone,
    ConditionSpec,
    ConfigError,
    DataError,
    DataSpec,
    FlowObjective,
    SampleOptions,
    Samples,
    TrainConfig,
    Trainer,
    UnknownNameError,
)
from panflow.sampling import guidance_groups

from .conditional_gaussians import JointGaussianOracle, LinearContextOracle, guided_moments

RHO = 0.8
COV = torch.tensor([[1.0, RHO], [RHO, 1.0]], dtype=torch.float64)


def _inpaint(model, a_value: float, n: int, inpaint: str, seed: int = 0, solver: str = "rk4", nfe: int = 64):
    obj = FlowObjective(time_shape=(2,))
    known = torch.zeros(n, 2, dtype=torch.bool)
    known[:, 0] = True
    x_known = torch.zeros(n, 2, dtype=torch.float64)
    x_known[:, 0] = a_value
    res = obj.generate(model, (n, 2), SampleOptions(solver, nfe=nfe, inpaint=inpaint), known=known, x_known=x_known,
                       generator=torch.Generator().manual_seed(seed))
    return res.x


def _moments_ok(b: torch.Tensor, mean: float, var: float, k: float = 3.0) -> tuple[bool, float, float]:
    n = b.numel()
    z_mean = (float(b.mean()) - mean) / math.sqrt(var / n)
    z_var = (float(b.var()) - var) / (var * math.sqrt(2 / (n - 1)))
    return abs(z_mean) < k and abs(z_var) < k, z_mean, z_var


def test_known_part_with_exact_field_gives_the_analytic_conditional():
    torch.set_default_dtype(torch.float64)
    try:
        x = _inpaint(JointGaussianOracle(COV), 1.5, 4000, "trained")
    finally:
        torch.set_default_dtype(torch.float32)
    assert torch.equal(x[:, 0], torch.full((4000,), 1.5, dtype=x.dtype))  # held exactly
    # the 1-D flow map between N(0, 1) and N(μ, s²) is affine, so each sample is exactly μ + s·x0_b
    x0 = torch.randn((4000, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mu, s = RHO * 1.5, math.sqrt(1 - RHO ** 2)
    torch.testing.assert_close(x[:, 1], mu + s * x0[:, 1], atol=1e-5, rtol=0)
    ok, zm, zv = _moments_ok(x[:, 1] - s * x0[:, 1].mean(), mu, s ** 2)  # moments, the noise's own mean removed
    assert ok, (zm, zv)


def test_replacement_inpainting_is_biased_and_the_bias_is_visible():
    """Training-free replacement with the exact *unconditional* field misses b | a (known bias)."""
    torch.set_default_dtype(torch.float64)
    try:
        x = _inpaint(JointGaussianOracle(COV, given=None), 1.5, 4000, "replacement")
    finally:
        torch.set_default_dtype(torch.float32)
    assert torch.equal(x[:, 0], torch.full((4000,), 1.5, dtype=x.dtype))
    ok, zm, zv = _moments_ok(x[:, 1], RHO * 1.5, 1 - RHO ** 2)
    assert not ok and abs(zv) > 10, (zm, zv)  # its variance is far from 1 − ρ²


@pytest.mark.slow
def test_trained_known_mask_recovers_the_gaussian_conditional():
    from panflow_toy2d.backbones import TimeMLP

    g = torch.Generator().manual_seed(0)
    chol = torch.linalg.cholesky(COV.float())
    data = Samples(torch.randn(50_000, 2, generator=g) @ chol.T)
    torch.manual_seed(0)
    model = TimeMLP(2, width=128, depth=3, per_element=True)
    obj = FlowObjective(time_shape=(2,), known={"name": "random", "p_none": 0.2})
    cfg = TrainConfig(steps=1500, batch_size=512, lr=2e-3, optimizer="adam", ema_decay=0.99, progress=False,
                      log_every=500, device="cpu", seed=0)
    tr = Trainer(model, obj, data, cfg)
    tr.fit()
    x = _inpaint(tr.sampling_model, 1.0, 3000, "trained", solver="euler", nfe=32).double()
    ok, zm, zv = _moments_ok(x[:, 1], RHO * 1.0, 1 - RHO ** 2)
    assert ok, (zm, zv)


def test_context_cfg_matches_the_linear_gaussian_moment_equations():
    a = torch.tensor([[0.9, 0.2], [-0.3, 0.7]], dtype=torch.float64)
    cov = torch.tensor([[0.3, 0.05], [0.05, 0.2]], dtype=torch.float64)
    c = torch.tensor([1.0, -0.5], dtype=torch.float64)
    n = 20_000
    spec = ConditionSpec("c", "tensor", (2,), dropout=0.1)
    obj = FlowObjective(conditions=(spec,))
    torch.set_default_dtype(torch.float64)
    try:
        for w in (1.0, 2.0):
            res = obj.generate(LinearContextOracle(a, cov), (n, 2), SampleOptions("rk4", nfe=80, guidance=w),
                               cond={"c": c.expand(n, 2)}, generator=torch.Generator().manual_seed(1))
            m, p = guided_moments(a, cov, c, w)
            emp_m, emp_p = res.x.mean(0), torch.cov(res.x.T)
            se = (p.diagonal() / n).sqrt()
            assert ((emp_m - m).abs() < 4 * se).all(), (w, emp_m, m)
            torch.testing.assert_close(emp_p, p, atol=4 * float(p.diagonal().max()) * math.sqrt(2 / n), rtol=0)
            if w == 1.0:  # plain conditional sampling is the exact conditional N(A c, Σ)
                torch.testing.assert_close(m, a @ c, atol=1e-6, rtol=0)
                torch.testing.assert_close(p, cov, atol=1e-6, rtol=0)
            else:  # guidance sharpens: smaller spread than the conditional
                assert bool((p.diagonal() < cov.diagonal()).all())
    finally:
        torch.set_default_dtype(torch.float32)


def test_known_elements_are_never_moved_by_the_model_output():
    known = torch.tensor([[True, False, True, False]] * 3)

    class Loud(torch.nn.Module):  # a huge velocity at the known elements, zero elsewhere
        seen = []

        def forward(self, x, t, cond=None):
            Loud.seen.append(t.clone())
            return torch.where(known, torch.full_like(x, 1e6), torch.zeros_like(x))

    obj = FlowObjective(time_shape=(4,))
    x_known = torch.arange(12.0).reshape(3, 4)
    for solver in ("euler", "heun", "rk4", "dopri5", "sde"):
        Loud.seen = []
        res = obj.generate(Loud(), (3, 4), SampleOptions(solver, nfe=4), known=known, x_known=x_known,
                           generator=torch.Generator().manual_seed(0))
        assert torch.equal(res.x[known], x_known[known]), solver
        assert torch.isfinite(res.x).all() and (res.x[~known].abs() < 10).all(), solver
        assert all(bool((t[known] == 1.0).all()) and t.shape == (3, 4) for t in Loud.seen), solver


def test_training_presents_known_clean_and_leaves_them_out_of_the_loss():
    seen = {}

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x, t, cond=None):
            seen["x"], seen["t"] = x.detach(), t.detach()
            return x * self.w

    obj = FlowObjective(time_shape=(3,))
    x1 = torch.randn(4, 3)
    known = torch.tensor([[True, False, False]] * 4)
    loss = obj.loss(Probe(), Samples(x1, known=known), generator=torch.Generator().manual_seed(0))
    assert torch.equal(seen["x"][:, 0], x1[:, 0]) and bool((seen["t"][:, 0] == 1).all())
    rand = obj.draw(4, x1, torch.Generator().manual_seed(0))
    t = rand["t"][:, None].expand(4, 3)
    u = x1 - rand["x0"]
    err = ((0 * x1 - u) ** 2)[:, 1:]
    assert float(loss.detach()) == pytest.approx(float(err.mean()), rel=1e-6)
    assert t.shape == (4, 3)


def test_guidance_groups_compose_per_condition_scales():
    conds = (ConditionSpec("a", "tensor", (1,), dropout=0.1), ConditionSpec("b", "tensor", (1,), dropout=0.1))

    class Additive(torch.nn.Module):  # v = a + 10 b, with nulls at 0
        def forward(self, x, t, cond):
            return cond["a"].expand_as(x) + 10 * cond["b"].expand_as(x)

    obj = FlowObjective(conditions=conds)
    cond = {"a": torch.ones(2, 1), "b": torch.ones(2, 1)}
    f = obj.field(Additive(), cond, SampleOptions(guidance_scales={"a": 2.0, "b": 3.0}), batch=2)
    # v_0 = 0, v_1 (a only) = 1, v_2 (a, b) = 11: v = 0 + 2 (1 − 0) + 3 (11 − 1) = 32
    assert torch.allclose(f(torch.zeros(2, 1), torch.full((2,), 0.5)), torch.full((2, 1), 32.0))
    f = obj.field(Additive(), cond, SampleOptions(guidance=2.0, guided=["b"]), batch=2)
    assert torch.allclose(f(torch.zeros(2, 1), torch.full((2,), 0.5)), torch.full((2, 1), 21.0))  # 1 + 2·10


def test_condition_errors_are_clear():
    spec = ConditionSpec("obs", "tensor", (2, 3), dropout=0.0)
    obj = FlowObjective(conditions=(spec,))
    model = torch.nn.Identity()
    with pytest.raises(DataError, match="'obs' was not given"):
        obj.generate(lambda x, t, c: x, (2, 4), SampleOptions(), cond={})
    with pytest.raises(DataError, match="shape"):
        obj.generate(lambda x, t, c: x, (2, 4), SampleOptions(), cond={"obs": torch.zeros(2, 3)})
    with pytest.raises(UnknownNameError, match="Did you mean 'obs'"):
        obj.generate(lambda x, t, c: x, (2, 4), SampleOptions(), cond={"obz": torch.zeros(2, 2, 3)})
    with pytest.raises(Exception, match="dropout 0"):
        guidance_groups((spec,), SampleOptions(guidance=2.0))
    with pytest.raises(DataError, match="per-element time"):
        obj.generate(model, (2, 4), SampleOptions(), cond={"obs": torch.zeros(2, 2, 3)},
                     known=torch.ones(2, 4, dtype=torch.bool), x_known=torch.zeros(2, 4))


def test_backbone_declares_what_it_consumes():
    bb = Backbone("b", lambda spec: torch.nn.Identity())
    spec = DataSpec("continuous", (4,), conditions=(ConditionSpec("obs", "tensor", (2,)),), time_shape=(4,))
    with pytest.raises(ConfigError, match="cannot consume condition 'obs'.*per-element time"):
        bb.check(spec, "demo")
    assert not Backbone("ok", lambda s: None, consumes=lambda c, s: True, per_element_time=True).problems(spec)


def test_label_shorthand_is_one_condition():
    spec = DataSpec("continuous", (2,), num_classes=3)
    assert [c.name for c in spec.conditions] == ["label"] and spec.conditions[0].num_classes == 3
    s = Samples(torch.zeros(4, 2), torch.arange(4))
    assert s.cond["label"] is s.y and len(s.index(slice(0, 2)).cond["label"]) == 2
    assert DataSpec.from_json(spec.to_json()) == spec
